"""Reading and writing ticket rows inside one transaction, and the views handed out.

Everything here takes the caller's ``AsyncSession``: the manager decides what belongs to
one transaction (a whole batch of fault transitions does), so a crash leaves either all
of a change and its audit events or none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets.events import TicketEvent, TicketEventKind, fault_episode
from elvwatch.tickets.field_schema import PhotoRow, VisitRow
from elvwatch.tickets.lifecycle import TicketState, UnknownTicket, sign_off_refusal
from elvwatch.tickets.schema import (
    ChecklistResultRow,
    FeedbackRow,
    RmaClaimRow,
    ServicePartRow,
    ServiceRecordRow,
    SignOffRow,
    SupersededDeadlineRow,
    TicketDeviceRow,
    TicketEventRow,
    TicketRow,
)
from elvwatch.tickets.store import ArchiveEventRow, DeviceRow, from_epoch, to_epoch


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else to_epoch(moment)


def moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else from_epoch(seconds)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    kind: str
    at: float
    actor: str
    note: str
    from_state: str | None
    to_state: str
    via: str | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket as the API, CLI and reports see it (times in epoch seconds)."""

    number: str
    kind: str
    state: str
    site: str
    site_name: str
    system: str | None
    device: str | None
    location: str | None
    rule: str | None
    fingerprint: str | None
    severity: str
    title_zh: str
    title_en: str
    summary: str
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    verified_at: float | None
    closed_at: float | None
    response_due: float | None
    resolve_due: float | None
    resolve_to_agree: bool
    response_breached: bool
    resolve_breached: bool
    fault_active: bool
    recurrences: int
    recovered_without_intervention: bool
    period: str | None
    checklist: tuple[str, ...]
    affected: tuple[str, ...]
    # The plan's life (migration 0004).  ``responded_at``: first response by a person
    # (no acknowledgement, no response time).  ``response_breached``/``resolve_breached``
    # above stay true once a deadline was breached, even after it is renegotiated.
    responded_at: float | None = None
    awaiting_record: bool = False
    signed_off_at: float | None = None
    close_reason: str | None = None       # signed_off | no_sign_off
    original_severity: str | None = None  # before a reclassification
    channel: str = "monitoring"
    reporter: str | None = None
    reporter_contact: str | None = None
    needs_verification: bool = True       # a device the probes watch confirms the repair
    sign_off_refusal: str | None = None   # lifecycle.sign_off_refusal: None = can sign now
    solution: str | None = None       # dispatch: the solution given,
    assignee: str | None = None       # the engineer sent,
    eta: float | None = None          # and when they are expected on site
    follow_up_of: str | None = None   # the work order whose checklist opened this ticket


@dataclass(frozen=True, slots=True)
class TicketDetail:
    ticket: Ticket
    events: tuple[AuditEntry, ...]
    service_records: tuple[dict[str, object], ...] = field(default=())
    sign_offs: tuple[dict[str, object], ...] = field(default=())
    feedback: tuple[dict[str, object], ...] = field(default=())
    checklist_results: tuple[dict[str, object], ...] = field(default=())
    rma_claims: tuple[dict[str, object], ...] = field(default=())
    # Equipment archive changes this ticket's service records made (replacements).
    archive_changes: tuple[dict[str, object], ...] = field(default=())
    # Deadlines replaced by a renegotiation or reclassification, with their breaches.
    superseded_deadlines: tuple[dict[str, object], ...] = field(default=())
    visits: tuple[dict[str, object], ...] = field(default=())
    photos: tuple[dict[str, object], ...] = field(default=())


async def by_number(session: AsyncSession, number: str) -> TicketRow:
    row = await session.scalar(select(TicketRow).where(TicketRow.number == number))
    if row is None:
        raise UnknownTicket(f"no ticket {number!r}")
    return row


async def live_ticket(session: AsyncSession, fingerprint: str) -> TicketRow | None:
    """The ticket of the fault's current episode: any not yet closed."""
    return await session.scalar(select(TicketRow).where(TicketRow.open_key == fingerprint))


async def recent_closed(session: AsyncSession, fingerprint: str,
                        resolved_since: float) -> TicketRow | None:
    """The newest closed ticket of the fault resolved after ``resolved_since``."""
    return await session.scalar(
        select(TicketRow)
        .where(TicketRow.fingerprint == fingerprint, TicketRow.state == TicketState.CLOSED,
               TicketRow.resolved_at >= from_epoch(resolved_since))
        .order_by(TicketRow.resolved_at.desc()).limit(1))


async def tickets_of_devices(session: AsyncSession, devices: Iterable[str],
                             states: tuple[str, ...]) -> list[TicketRow]:
    rows = await session.scalars(select(TicketRow).where(
        TicketRow.device.in_(list(devices)), TicketRow.state.in_(states),
        TicketRow.kind == "fault").order_by(TicketRow.id))
    return list(rows)


async def live_tickets(session: AsyncSession) -> list[TicketRow]:
    rows = await session.scalars(select(TicketRow).where(TicketRow.state != TicketState.CLOSED)
                                 .order_by(TicketRow.id))
    return list(rows)


async def next_number(session: AsyncSession, year: int) -> str:
    # Numbers count per year; the unique constraint on number backs this up.
    prefix = f"T-{year}-"
    count = await session.scalar(select(func.count()).select_from(TicketRow)
                                 .where(TicketRow.number.like(prefix + "%")))
    return f"{prefix}{(count or 0) + 1:06d}"


async def affected(session: AsyncSession, ticket_id: int) -> tuple[str, ...]:
    rows = await session.scalars(select(TicketDeviceRow.device).where(
        TicketDeviceRow.ticket_id == ticket_id, TicketDeviceRow.role == "affected")
        .order_by(TicketDeviceRow.device))
    return tuple(rows)


async def attach(session: AsyncSession, row: TicketRow, device: str, role: str,
                 at: float) -> bool:
    """List ``device`` on the ticket; False if it already was (and is not cleared)."""
    existing = await session.get(TicketDeviceRow, (row.id, device))
    if existing is None:
        session.add(TicketDeviceRow(ticket_id=row.id, device=device, role=role,
                                    added_at=from_epoch(at), cleared_at=None))
        return True
    if existing.cleared_at is not None:
        existing.cleared_at = None
        return True
    return False


async def mark_cleared(session: AsyncSession, ticket_id: int, device: str, at: float) -> None:
    existing = await session.get(TicketDeviceRow, (ticket_id, device))
    if existing is not None and existing.cleared_at is None:
        existing.cleared_at = from_epoch(at)


async def add_event(session: AsyncSession, row: TicketRow, kind: TicketEventKind, at: float,
                    *, actor: str = "system", note: str = "",
                    from_state: str | None = None, via: str | None = None) -> TicketEvent:
    """Write one audit event of ``row`` (after its change) and return it as a TicketEvent.
    ``via``: through what the actor acted (records.VIA); "system" for the system."""
    row.event_seq += 1
    row.updated_at = from_epoch(at)
    event_id = f"{row.number}#{row.event_seq}"
    if via is None and actor == "system":
        via = "system"
    session.add(TicketEventRow(event_id=event_id, ticket_id=row.id, seq=row.event_seq,
                               kind=kind.value, at=from_epoch(at), actor=actor[:128],
                               note=note, from_state=from_state, to_state=row.state,
                               via=via or None))
    return ticket_event(row, event_id, kind, at, actor, note, await affected(session, row.id),
                        await device_name(session, row.device))


async def device_name(session: AsyncSession, device: str | None) -> str | None:
    """The archive's name of ``device`` (None: no device, unknown, or unnamed)."""
    if device is None:
        return None
    found = await session.get(DeviceRow, device)
    return found.name if found is not None else None


def ticket_event(row: TicketRow, event_id: str, kind: TicketEventKind, at: float, actor: str,
                 note: str, affected_devices: tuple[str, ...],
                 name: str | None = None) -> TicketEvent:
    return TicketEvent(
        id=event_id, kind=kind, ticket=row.number, at=at, site=row.site,
        site_name=row.site_name, language=row.language, severity=row.severity,
        title_zh=row.title_zh, title_en=row.title_en, device=row.device, system=row.system,
        location=row.location, state=row.state, response_due=epoch(row.response_due),
        resolve_due=epoch(row.resolve_due), affected=affected_devices, actor=actor, note=note,
        ticket_kind=row.kind, device_name=name,
        episode=fault_episode(row.fingerprint, at)
        if row.fingerprint and kind in (TicketEventKind.OPENED, TicketEventKind.REOPENED)
        else None)


async def events_after(session: AsyncSession, after_id: int, limit: int = 500,
                       since: float | None = None) -> list[tuple[int, TicketEvent]]:
    """Stored events with row id > ``after_id`` (and at >= ``since``), oldest first: at
    start the daemon hands recent ones to the notifiers again, whose log skips those
    already known — an event committed just before a crash is still notified."""
    query = (select(TicketEventRow, TicketRow)
             .join(TicketRow, TicketEventRow.ticket_id == TicketRow.id)
             .where(TicketEventRow.id > after_id).order_by(TicketEventRow.id).limit(limit))
    if since is not None:
        query = query.where(TicketEventRow.at >= from_epoch(since))
    result = await session.execute(query)
    out = []
    for ev, row in result:
        out.append((ev.id, ticket_event(row, ev.event_id, TicketEventKind(ev.kind),
                                        to_epoch(ev.at), ev.actor, ev.note,
                                        await affected(session, row.id),
                                        await device_name(session, row.device))))
    return out


def needs_verification(row: TicketRow) -> bool:
    """Whether the probes confirm this ticket's repair: a fault ticket of a device.
    Work orders and requests about a place have no technical verification."""
    return row.kind == "fault" and row.device is not None


async def view(session: AsyncSession, row: TicketRow) -> Ticket:
    return Ticket(
        number=row.number, kind=row.kind, state=row.state, site=row.site,
        site_name=row.site_name, system=row.system, device=row.device, location=row.location,
        rule=row.rule, fingerprint=row.fingerprint, severity=row.severity,
        title_zh=row.title_zh, title_en=row.title_en, summary=row.summary,
        opened_at=to_epoch(row.opened_at), acknowledged_at=epoch(row.acknowledged_at),
        resolved_at=epoch(row.resolved_at), verified_at=epoch(row.verified_at),
        closed_at=epoch(row.closed_at), response_due=epoch(row.response_due),
        resolve_due=epoch(row.resolve_due), resolve_to_agree=row.resolve_to_agree,
        response_breached=row.response_breached_at is not None or row.response_breaches > 0,
        resolve_breached=row.resolve_breached_at is not None or row.resolve_breaches > 0,
        fault_active=row.fault_active,
        recurrences=row.recurrences,
        recovered_without_intervention=row.recovered_without_intervention,
        period=row.period, checklist=tuple(row.checklist),
        affected=await affected(session, row.id), responded_at=epoch(row.responded_at),
        awaiting_record=row.awaiting_record, signed_off_at=epoch(row.signed_off_at),
        close_reason=row.close_reason, original_severity=row.original_severity,
        channel=row.channel, reporter=row.reporter, reporter_contact=row.reporter_contact,
        needs_verification=needs_verification(row),
        sign_off_refusal=sign_off_refusal(row.state, fault_active=row.fault_active,
                                          awaiting_record=row.awaiting_record,
                                          signed_off=row.signed_off_at is not None,
                                          auto_closed=row.close_reason == "no_sign_off"),
        solution=row.solution, assignee=row.assignee, eta=epoch(row.eta),
        follow_up_of=row.follow_up_of)


async def detail(session: AsyncSession, row: TicketRow) -> TicketDetail:
    events = await session.scalars(select(TicketEventRow).where(
        TicketEventRow.ticket_id == row.id).order_by(TicketEventRow.seq))
    records = []
    for rec in await session.scalars(select(ServiceRecordRow).where(
            ServiceRecordRow.ticket_id == row.id).order_by(ServiceRecordRow.id)):
        parts = await session.scalars(select(ServicePartRow).where(
            ServicePartRow.record_id == rec.id).order_by(ServicePartRow.id))
        records.append({"at": to_epoch(rec.at), "engineer": rec.engineer,
                        "work_done": rec.work_done, "cause": rec.cause or "",
                        "visit_id": rec.visit_id,
                        "parts": [{"device": p.device, "part": p.part, "quantity": p.quantity,
                                   "coverage": p.coverage,
                                   "warranty_until": _iso(p.warranty_until),
                                   "unit_price_cents": p.unit_price_cents,
                                   "consumable": p.consumable} for p in parts]})
    signs: list[dict[str, object]] = [
        {"name": s.name, "at": to_epoch(s.at), "comment": s.comment, "channel": s.channel,
         "receipt": s.receipt, "recorded_by": s.recorded_by, "visit_id": s.visit_id}
        for s in await session.scalars(select(SignOffRow).where(
            SignOffRow.ticket_id == row.id).order_by(SignOffRow.id))]
    feedback = [feedback_view(f) for f in await session.scalars(select(FeedbackRow).where(
        FeedbackRow.ticket_id == row.id).order_by(FeedbackRow.id))]
    results: list[dict[str, object]] = [
        {"item": c.item, "ok": c.ok, "note": c.note, "at": to_epoch(c.at), "device": c.device,
         "follow_up": c.follow_up}
        for c in await session.scalars(select(ChecklistResultRow).where(
            ChecklistResultRow.ticket_id == row.id).order_by(ChecklistResultRow.id))]
    claims: list[dict[str, object]] = [
        {"claim_number": c.claim_number, "part": c.part, "device": c.device,
         "vendor": c.vendor, "vendor_contact": c.vendor_contact,
         "sent_on": _iso(c.sent_on), "returned_on": _iso(c.returned_on),
         "note": c.note, "recorded_by": c.recorded_by, "updated_at": to_epoch(c.updated_at)}
        for c in await session.scalars(select(RmaClaimRow).where(
            RmaClaimRow.ticket_id == row.id).order_by(RmaClaimRow.id))]
    changes: list[dict[str, object]] = [
        {"device": a.device_id, "field": a.field, "old": a.old, "new": a.new,
         "at": to_epoch(a.at)}
        for a in await session.scalars(select(ArchiveEventRow).where(
            ArchiveEventRow.ticket == row.number).order_by(ArchiveEventRow.id))]
    visits: list[dict[str, object]] = [
        {"id": v.id, "engineer": v.engineer, "arrived_at": to_epoch(v.arrived_at),
         "departed_at": epoch(v.departed_at), "note": v.note}
        for v in await session.scalars(select(VisitRow).where(
            VisitRow.ticket_id == row.id).order_by(VisitRow.arrived_at, VisitRow.id))]
    photos: list[dict[str, object]] = [
        {"id": p.id, "visit_id": p.visit_id, "content_type": p.content_type,
         "bytes": p.bytes, "sha256": p.sha256, "width": p.width, "height": p.height,
         "caption": p.caption, "uploaded_by": p.uploaded_by, "at": to_epoch(p.at)}
        for p in await session.scalars(select(PhotoRow).where(
            PhotoRow.ticket_id == row.id).order_by(PhotoRow.id))]
    return TicketDetail(
        ticket=await view(session, row),
        events=tuple(AuditEntry(e.event_id, e.kind, to_epoch(e.at), e.actor, e.note,
                                e.from_state, e.to_state, e.via) for e in events),
        service_records=tuple(records), sign_offs=tuple(signs), feedback=tuple(feedback),
        checklist_results=tuple(results), rma_claims=tuple(claims),
        archive_changes=tuple(changes),
        superseded_deadlines=tuple(
            {"which": d.which, "due": to_epoch(d.due), "severity": d.severity,
             "breached_at": epoch(d.breached_at), "replaced_at": to_epoch(d.replaced_at),
             "replaced_by": d.replaced_by, "reason": d.reason}
            for d in await superseded(session, row.id)),
        visits=tuple(visits), photos=tuple(photos))


async def superseded(session: AsyncSession, ticket_id: int) -> list[SupersededDeadlineRow]:
    rows = await session.scalars(select(SupersededDeadlineRow).where(
        SupersededDeadlineRow.ticket_id == ticket_id).order_by(SupersededDeadlineRow.id))
    return list(rows)


def feedback_view(f: FeedbackRow) -> dict[str, object]:
    """A return visit as the API and the forms read it (用户回访反馈信息表)."""
    return {"at": to_epoch(f.at), "rating": f.rating, "comment": f.comment,
            "recorded_by": f.recorded_by, "site": f.site, "contact": f.contact,
            "quality_issue": f.quality_issue, "solution": f.solution, "outcome": f.outcome,
            "outcome_at": epoch(f.outcome_at)}


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
