"""What people hand the ticket stage: who acts, service records, sign-offs, tickets they
report, warranty claims — plain values, checked in one place with one wording.

Every text here is typed by a person (or comes through a page or the API): it is
stripped and bounded; a required one that is empty is a ValueError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MAX_TEXT = 4000   # notes and records are typed by people; bounded all the same
MAX_NAME = 128    # actors, engineers, reporters: they go into the audit trail's actor
SEVERITIES = ("general", "major", "emergency")
# How a ticket came in.  ``monitoring`` and ``schedule`` are the system's own.
PEOPLE_CHANNELS = ("phone", "wechat", "walk_in", "email", "other")
CHANNELS = ("monitoring", "schedule", *PEOPLE_CHANNELS)
# Through what an action came: the command line, the JSON API, a page (with the bearer
# token or an engineer's grant), a signed sign-off link, or the system itself.
VIA = ("cli", "api", "page", "link", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, and through what (one of VIA, or "" when the caller does not say)."""

    name: str
    via: str = ""


SYSTEM = Actor("system", "system")


@dataclass(frozen=True, slots=True)
class PartReplaced:
    part: str
    device: str | None = None   # None: the ticket's device
    quantity: int = 1
    unit_price_cents: int | None = None   # fen; None: not priced
    consumable: bool = False    # cable, connectors, batteries: never under the device's warranty


@dataclass(frozen=True, slots=True)
class Replacement:
    """A device swapped for a new unit: the equipment archive takes the new unit's facts.

    ``installed`` None: the day of the service record.  ``warranty_until`` None: the
    archive keeps no warranty for the new unit (an empty field never keeps the old
    unit's warranty: it was the old unit's)."""

    device: str | None = None   # None: the ticket's device
    serial: str = ""
    model: str = ""
    vendor: str = ""
    installed: date | None = None
    warranty_until: date | None = None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """服务记录: who did what and why; parts are claimed under warranty or charged at
    cost according to the archive's warranty date of the device they went into (before
    any replacement in the same record) — a consumable is always charged.  The record
    belongs to the engineer's visit in progress on the ticket, if any (tickets/visits.py)."""

    engineer: str
    work_done: str
    parts: tuple[PartReplaced, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    cause: str = ""             # the cause the engineer found (故障原因)


@dataclass(frozen=True, slots=True)
class SignOff:
    """The site representative's acceptance (用户已验收).  ``channel``: ``link`` (they
    signed through the signed link) or ``paper`` (an engineer records the signed paper
    receipt 服务回执单, ``receipt`` its number)."""

    name: str
    comment: str = ""
    channel: str = "link"
    receipt: str = ""


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A ticket reported by a person: a phone call, a WeChat message, a walk-in request.

    Needs ``device`` or ``location``; a device's location and system come from the
    archive when not given.  ``reported_at`` None: now (the contract's clocks start
    when the request came in, so a call written down later gives its time)."""

    site: str
    description: str
    reporter: str
    channel: str
    severity: str = "general"
    device: str | None = None
    location: str | None = None
    system: str | None = None
    reporter_contact: str = ""
    reported_at: float | None = None
    title: str = ""


@dataclass(frozen=True, slots=True)
class RmaClaim:
    """A manufacturer warranty claim for a part.  Recorded again with the same claim
    number it is updated: fields left empty (None, "") keep what is stored."""

    claim_number: str
    part: str = ""
    vendor_contact: str = ""
    vendor: str = ""
    device: str | None = None
    sent_on: date | None = None
    returned_on: date | None = None
    note: str = ""


def text(value: str | None, what: str, *, required: bool = True,
         limit: int = MAX_TEXT) -> str:
    """``value`` stripped and bounded; a required one that is empty is refused."""
    value = (value or "").strip()
    if required and not value:
        raise ValueError(f"{what} is required")
    return value[:limit]


def actor_of(actor: str | Actor) -> Actor:
    """A checked Actor from a name or an Actor."""
    if isinstance(actor, str):
        actor = Actor(actor)
    if actor.via and actor.via not in VIA:
        raise ValueError(f"unknown via {actor.via!r} (one of {', '.join(VIA)})")
    return Actor(text(actor.name, "actor", limit=MAX_NAME), actor.via)


def choice(value: str, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def coverage(warranty_until: date | None, on: date) -> str:
    if warranty_until is None:
        return "unknown"
    return "warranty" if on <= warranty_until else "at_cost"
