"""Ticket events: what the ticket stage tells the exporters (notifiers, metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TicketEventKind(StrEnum):
    """``verified`` is the system's confirmation of a recovery (系统确认恢复);
    ``signed_off`` is the client's acceptance (用户已验收).  They are never worded alike."""

    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"        # a deadline is near or passed: escalation contacts told
    BREACHED = "breached"          # response_due or resolve_due passed
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CLOSED = "closed"
    REOPENED = "reopened"
    PREVENTIVE_DUE = "preventive_due"
    DEADLINE_SET = "deadline_set"    # the repair deadline was agreed (or changed)
    FEEDBACK = "feedback"            # return-visit feedback recorded
    ARRIVED = "arrived"              # an engineer arrived on site (a visit starts)
    DEPARTED = "departed"            # ... and left (the visit's receipt is complete)
    PHOTO = "photo"                  # a photo taken on site was added
    FOLLOW_UP = "follow_up"          # a failed checklist item opened a follow-up ticket
    SIGNED_OFF = "signed_off"        # the site representative accepted the result
    RECLASSIFIED = "reclassified"    # severity changed after diagnosis
    RMA = "rma"                      # a manufacturer warranty claim recorded or updated
    DEVICE_REPLACED = "device_replaced"  # a service record replaced a device: archive updated


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One thing that happened to a ticket, with what a message needs to say it.

    ``id`` is unique and stable per event (the notification log keys on it, so a
    restart neither loses nor repeats a notification)."""

    id: str
    kind: TicketEventKind
    ticket: str                 # ticket number, e.g. "T-2026-000123"
    at: float                   # epoch seconds
    site: str
    site_name: str
    language: str               # "zh-CN" or "en": the site's language
    severity: str               # general | major | emergency
    title_zh: str
    title_en: str
    device: str | None = None
    system: str | None = None
    location: str | None = None
    state: str = ""             # ticket state after the event
    response_due: float | None = None
    resolve_due: float | None = None
    affected: tuple[str, ...] = field(default=())
    actor: str = "system"
    note: str = ""
    url: str | None = None      # the ticket page, where the daemon knows its address
    ticket_kind: str = "fault"  # fault | preventive
    device_name: str | None = None  # the archive's name of ``device``, what people read
    # The fault episode an opened/reopened event starts (:func:`fault_episode`): a
    # notification already sent for it while the store was down stands for this one.
    episode: str | None = None


def fault_episode(fingerprint: str, at: float) -> str:
    """One fault episode: the fault and when it fired (to the millisecond, which
    survives the store's round trip)."""
    return f"{fingerprint}@{at:.3f}"
