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
* the site's contacts and address (passed in: exporters never read the daemon's config).

Each ticket carries its dispatch (the solution given, the engineer sent, the expected
arrival, who reported it and how), each device to visit its repair history: its last
tickets with the cause found and the work done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.exporters.reports.labels import Label, site_labels
from elvwatch.tickets.actions import coverage
from elvwatch.tickets.lifecycle import IN_HAND, TO_SIGN, TicketState
from elvwatch.tickets.preventive import ChecklistItem, builtin_checklists
from elvwatch.tickets.schema import ServiceRecordRow, TicketRow
from elvwatch.tickets.store import ArchiveEntry, Store

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
    solution: str | None = None     # the dispatch: what was promised,
    assignee: str | None = None     # who is sent,
    eta: float | None = None        # when expected on site
    channel: str = "monitoring"     # how it came in, and from whom
    reporter: str | None = None
    reporter_contact: str | None = None


@dataclass(frozen=True, slots=True)
class Repair:
    """A past ticket of a device, as its repair history shows it."""

    number: str
    opened_at: float
    state: str
    title_zh: str
    title_en: str
    cause: str
    work_done: str


@dataclass(frozen=True, slots=True)
class BriefDevice:
    entry: ArchiveEntry
    state: str
    since: float | None
    cause: str
    warranty: str           # warranty | at_cost | unknown
    tickets: tuple[str, ...]
    history: tuple[Repair, ...] = ()


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
    address: str | None = None
    labels: dict[str, Label] = field(default_factory=dict)


def split_location(location: str | None) -> tuple[str, str]:
    """(building, floor) of "building / floor / place"; empty strings where missing."""
    parts = [p.strip() for p in (location or "").split("/")]
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


def deadline_of(row: TicketRow) -> tuple[float | None, str]:
    if row.state == TicketState.OPEN and row.response_due is not None:
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
                       due, which, due is not None and now >= due, row.solution,
                       row.assignee, None if row.eta is None else row.eta.timestamp(),
                       row.channel, row.reporter, row.reporter_contact)


HISTORY = 5   # past tickets shown per device to visit


async def repair_history(session: AsyncSession, devices: Sequence[str],
                         limit: int = HISTORY) -> dict[str, tuple[Repair, ...]]:
    """Each device's last ``limit`` fault tickets, newest first, with the cause found
    and the work done (their service records joined)."""
    out: dict[str, tuple[Repair, ...]] = {}
    for device in devices:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.device == device, TicketRow.kind == "fault")
            .order_by(TicketRow.opened_at.desc(), TicketRow.id.desc()).limit(limit)))
        repairs = []
        for row in rows:
            records = list(await session.scalars(select(ServiceRecordRow).where(
                ServiceRecordRow.ticket_id == row.id).order_by(ServiceRecordRow.id)))
            repairs.append(Repair(
                row.number, row.opened_at.timestamp(), row.state, row.title_zh, row.title_en,
                "; ".join(r.cause for r in records if r.cause),
                "; ".join(r.work_done for r in records)))
        out[device] = tuple(repairs)
    return out


async def build_brief(store: Store, site: str, *, site_name: str, language: str,
                      contacts: Sequence[Contact], now: float,
                      timezone: str = "Asia/Shanghai", address: str | None = None) -> Brief:
    async with store.transaction("read tickets") as session:
        rows = list(await session.scalars(
            select(TicketRow).where(TicketRow.site == site,
                                    TicketRow.state.in_(("open", "acknowledged", "resolved",
                                                         "verified")))
            .order_by(TicketRow.id)))
        labels = await site_labels(session, site)
    states = await store.current_states()
    archive = {e.id: e for e in await store.archive() if e.site == site}
    live = [r for r in rows if r.state in IN_HAND]
    tickets = sorted((_brief_ticket(r, now) for r in live), key=urgency)
    waiting = tuple(sorted((_brief_ticket(r, now) for r in rows
                            if r.state in TO_SIGN and r.signed_off_at is None),
                           key=lambda t: t.opened_at))
    by_device: dict[str, list[str]] = {}
    for t in tickets:
        if t.kind == "fault" and t.device is not None:
            by_device.setdefault(t.device, []).append(t.number)
    faulty = {d for d, (s, _, _) in states.items() if s.value in ("down", "degraded")}
    visit_day = datetime.fromtimestamp(now, ZoneInfo(timezone)).date()
    to_visit = sorted((set(by_device) | faulty) & set(archive))
    async with store.transaction("read the repair history") as session:
        history = await repair_history(session, to_visit)
    visits: list[BriefDevice] = []
    for device in to_visit:
        entry = archive[device]
        state, since, cause = states.get(device, (None, None, ""))
        visits.append(BriefDevice(entry, state.value if state else "unknown", since, cause,
                                  coverage(entry.warranty_until, visit_day),
                                  tuple(by_device.get(device, ())), history.get(device, ())))
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
                      _checklist(row.checklist))
        for t in tickets if t.kind == "preventive"
        for row in live if row.number == t.number)
    return Brief(site, site_name, language, timezone, now, tuple(tickets), ordered, parts,
                 preventive, waiting, tuple(contacts), address, labels)


def _checklist(ids: Sequence[str]) -> tuple[ChecklistItem, ...]:
    """The work order's items with their built-in words (a config's own items keep their
    id here; the renderers name them from the site's config)."""
    lists = builtin_checklists()
    known = {item.id: item for items in (*lists.systems.values(), *lists.kinds.values())
             for item in items}
    return tuple(known.get(i, ChecklistItem(i, i, i)) for i in ids)
