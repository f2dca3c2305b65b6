"""The pre-visit brief: what an engineer needs before driving out to a site.

* open tickets (open / acknowledged), most urgent deadline first: an unanswered ticket's
  response deadline, else its repair deadline; "to agree" and no deadline go last; ties
  by severity (emergency first), then age;
* devices to visit — the own devices of open fault tickets plus every device currently
  down or degraded — grouped by building and floor (the archive's "building / floor /
  place"), faults first within a group;
* parts likely needed: the visited devices that are down or have an open fault ticket,
  by vendor and model, with warranty status on the visit day (claim under warranty or
  charge at cost, tickets/actions.py ``coverage``);
* due preventive checklist items: open preventive work orders and their checklists;
* tickets resolved or verified and waiting for the site representative's sign-off;
* the site's contacts (passed in: exporters never read the daemon's config).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tickets.actions import coverage
from tickets.preventive import CHECKLISTS, ChecklistItem
from tickets.schema import TicketRow
from tickets.store import ArchiveEntry, Store

SEVERITY_RANK = {"emergency": 0, "major": 1, "general": 2}
STATE_RANK = {"down": 0, "degraded": 1, "unknown": 2, "up": 3}


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    role: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class BriefTicket:
    number: str
    kind: str
    state: str
    severity: str
    device: str | None
    location: str | None
    title_zh: str
    title_en: str
    opened_at: float
    deadline: float | None
    deadline_kind: str      # response | resolve | to_agree | none
    overdue: bool


@dataclass(frozen=True, slots=True)
class BriefDevice:
    entry: ArchiveEntry
    state: str
    since: float | None
    cause: str
    warranty: str           # warranty | at_cost | unknown
    tickets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LocationGroup:
    building: str
    floor: str
    devices: tuple[BriefDevice, ...]


@dataclass(frozen=True, slots=True)
class PartNeed:
    vendor: str
    model: str
    warranty: str
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PreventiveDue:
    number: str
    system: str | None
    period: str | None
    due: float | None
    items: tuple[ChecklistItem, ...]


@dataclass(frozen=True, slots=True)
class Brief:
    site: str
    site_name: str
    language: str
    timezone: str
    generated_at: float
    tickets: tuple[BriefTicket, ...]
    groups: tuple[LocationGroup, ...]
    parts: tuple[PartNeed, ...]
    preventive: tuple[PreventiveDue, ...]
    awaiting_sign_off: tuple[BriefTicket, ...]
    contacts: tuple[Contact, ...]


def split_location(location: str | None) -> tuple[str, str]:
    """(building, floor) of "building / floor / place"; empty strings where missing."""
    parts = [p.strip() for p in (location or "").split("/")]
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


def deadline_of(row: TicketRow) -> tuple[float | None, str]:
    if row.state == "open" and row.response_due is not None:
        return row.response_due.timestamp(), "response"
    if row.resolve_due is not None:
        return row.resolve_due.timestamp(), "resolve"
    return None, "to_agree" if row.resolve_to_agree else "none"


def urgency(ticket: BriefTicket) -> tuple[int, float, int, float]:
    return (ticket.deadline is None, ticket.deadline or 0.0,
            SEVERITY_RANK.get(ticket.severity, 9), ticket.opened_at)


def _brief_ticket(row: TicketRow, now: float) -> BriefTicket:
    due, which = deadline_of(row)
    return BriefTicket(row.number, row.kind, row.state, row.severity, row.device,
                       row.location, row.title_zh, row.title_en, row.opened_at.timestamp(),
                       due, which, due is not None and now >= due)


async def build_brief(store: Store, site: str, *, site_name: str, language: str,
                      contacts: Sequence[Contact], now: float,
                      timezone: str = "Asia/Shanghai") -> Brief:
    async with store.transaction("read tickets") as session:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site,
                                    TicketRow.state.in_(("open", "acknowledged", "resolved",
                                                         "verified")))
            .order_by(TicketRow.id)))
    states = await store.current_states()
    archive = {e.id: e for e in await store.archive() if e.site == site}
    live = [r for r in rows if r.state in ("open", "acknowledged")]
    tickets = sorted((_brief_ticket(r, now) for r in live), key=urgency)
    waiting = tuple(sorted((_brief_ticket(r, now) for r in rows
                            if r.state in ("resolved", "verified") and r.signed_off_at is None),
                           key=lambda t: t.opened_at))
    by_device: dict[str, list[str]] = {}
    for t in tickets:
        if t.kind == "fault" and t.device is not None:
            by_device.setdefault(t.device, []).append(t.number)
    faulty = {d for d, (s, _, _) in states.items() if s.value in ("down", "degraded")}
    visit_day = datetime.fromtimestamp(now, ZoneInfo(timezone)).date()
    visits: list[BriefDevice] = []
    for device in sorted((set(by_device) | faulty) & set(archive)):
        entry = archive[device]
        state, since, cause = states.get(device, (None, None, ""))
        visits.append(BriefDevice(entry, state.value if state else "unknown", since, cause,
                                  coverage(entry.warranty_until, visit_day),
                                  tuple(by_device.get(device, ()))))
    groups: dict[tuple[str, str], list[BriefDevice]] = {}
    for v in visits:
        groups.setdefault(split_location(v.entry.location), []).append(v)
    ordered = tuple(
        LocationGroup(b, f, tuple(sorted(ds, key=lambda d: (STATE_RANK.get(d.state, 9),
                                                            d.entry.id))))
        # Devices without a location last: they need asking about on site.
        for (b, f), ds in sorted(groups.items(), key=lambda kv: (kv[0] == ("", ""), kv[0])))
    needs: dict[tuple[str, str, str], list[str]] = {}
    for v in visits:
        if v.state == "down" or v.tickets:
            key = (v.entry.vendor or "", v.entry.model or "", v.warranty)
            needs.setdefault(key, []).append(v.entry.id)
    parts = tuple(PartNeed(vendor, model, w, tuple(ids))
                  for (vendor, model, w), ids in sorted(needs.items()))
    preventive = tuple(
        PreventiveDue(t.number, row.system, row.period, t.deadline,
                      _checklist(row.system, row.checklist))
        for t in tickets if t.kind == "preventive"
        for row in live if row.number == t.number)
    return Brief(site, site_name, language, timezone, now, tuple(tickets), ordered, parts,
                 preventive, waiting, tuple(contacts))


def _checklist(system: str | None, ids: Sequence[str]) -> tuple[ChecklistItem, ...]:
    known = {item.id: item for item in CHECKLISTS.get(system or "", ())}
    return tuple(known.get(i, ChecklistItem(i, i, i)) for i in ids)
