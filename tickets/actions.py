"""What people do to tickets (acknowledge, resolve with a service record, verify with a
sign-off, close, reopen, agree a deadline, record feedback) and the read side.

Each action is one transaction; a refused one (IllegalTransition, UnknownTicket,
ValueError for bad input) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import ticket_store as ts
from tickets import visits
from tickets.core import K, ManagerBase
from tickets.events import TicketEvent
from tickets.lifecycle import Action, IllegalTransition, TicketState, next_state
from tickets.schema import (
    ChecklistResultRow,
    FeedbackRow,
    ServicePartRow,
    ServiceRecordRow,
    SignOffRow,
    TicketRow,
)
from tickets.store import DeviceRow

MAX_TEXT = 4000  # notes and records are typed by people; bounded all the same


@dataclass(frozen=True, slots=True)
class PartReplaced:
    part: str
    device: str | None = None   # None: the ticket's device
    quantity: int = 1
    unit_price_cents: int | None = None   # fen; None: not priced
    consumable: bool = False    # cable, connectors, batteries: never under the device's warranty


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """服务记录: who did what and why; parts are claimed under warranty or charged at
    cost according to the archive's warranty date of the device they went into
    (consumables are always charged).  The record belongs to the engineer's visit in
    progress on the ticket, if any (tickets/visits.py)."""

    engineer: str
    work_done: str
    parts: tuple[PartReplaced, ...] = ()
    cause: str = ""


@dataclass(frozen=True, slots=True)
class SignOff:
    name: str
    comment: str = ""


def coverage(warranty_until: date | None, on: date) -> str:
    if warranty_until is None:
        return "unknown"
    return "warranty" if on <= warranty_until else "at_cost"


def _text(value: str, what: str, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise ValueError(f"{what} is required")
    return value[:MAX_TEXT]


class TicketActions(ManagerBase):
    async def acknowledge(self, number: str, actor: str, note: str = "") -> list[TicketEvent]:
        return await self._act(number, Action.ACKNOWLEDGE, K.ACKNOWLEDGED, actor, note)

    async def resolve(self, number: str, actor: str,
                      record: ServiceRecord) -> list[TicketEvent]:
        """Resolve with the engineer's service record (a preventive work order is
        completed with :meth:`complete_preventive` instead)."""
        engineer = _text(record.engineer, "engineer")
        work = _text(record.work_done, "work done")
        at = self.clock()
        async with self._lock, self.store.transaction("resolve a ticket") as session:
            row = await ts.by_number(session, number)
            if row.kind == "preventive":
                raise ValueError(f"{number} is a preventive work order: complete it with its "
                                 "checklist results")
            target = next_state(number, Action.RESOLVE, TicketState(row.state))
            await self._record(session, row, engineer, work, record.parts, at, record.cause)
            event = await self._move(session, row, target, K.RESOLVED, at, actor,
                                     f"{engineer}: {work}")
        return self._emit([event])

    async def complete_preventive(self, number: str, actor: str, engineer: str,
                                  results: Mapping[str, tuple[bool, str]],
                                  work_done: str = "") -> list[TicketEvent]:
        """Complete a work order: every checklist item needs a result (ok, note)."""
        engineer = _text(engineer, "engineer")
        at = self.clock()
        async with self._lock, self.store.transaction("complete a work order") as session:
            row = await ts.by_number(session, number)
            if row.kind != "preventive":
                raise ValueError(f"{number} is not a preventive work order")
            target = next_state(number, Action.RESOLVE, TicketState(row.state))
            missing = [item for item in row.checklist if item not in results]
            unknown = [item for item in results if item not in row.checklist]
            if missing or unknown:
                raise ValueError(f"checklist of {number}: missing {missing or 'none'}, "
                                 f"unknown {unknown or 'none'}")
            for item in row.checklist:
                ok, note = results[item]
                session.add(ChecklistResultRow(ticket_id=row.id, item=item, ok=bool(ok),
                                               note=_text(note, "note", False),
                                               at=ts.moment(at)))
            failed = [item for item in row.checklist if not results[item][0]]
            summary = work_done.strip() or "checklist done"
            await self._record(session, row, engineer, _text(summary, "work"), (), at)
            note = f"{engineer}: {summary}" + (f"; not ok: {', '.join(failed)}" if failed else "")
            event = await self._move(session, row, target, K.RESOLVED, at, actor, note)
        return self._emit([event])

    async def verify(self, number: str, actor: str,
                     sign_off: SignOff | None = None) -> list[TicketEvent]:
        """Verify with the site representative's sign-off; refused while the device
        is still failing."""
        at = self.clock()
        async with self._lock, self.store.transaction("verify a ticket") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, Action.VERIFY, TicketState(row.state),
                                device_failing=(row.device or number) if row.fault_active
                                else None)
            note = ""
            if sign_off is not None:
                name = _text(sign_off.name, "sign-off name")
                comment = _text(sign_off.comment, "comment", False)
                session.add(SignOffRow(ticket_id=row.id, name=name, at=ts.moment(at),
                                       comment=comment))
                note = f"signed off by {name}" + (f": {comment}" if comment else "")
            event = await self._move(session, row, target, K.VERIFIED, at, actor, note)
        return self._emit([event])

    async def close(self, number: str, actor: str, note: str = "") -> list[TicketEvent]:
        return await self._act(number, Action.CLOSE, K.CLOSED, actor, note)

    async def reopen(self, number: str, actor: str, note: str = "") -> list[TicketEvent]:
        at = self.clock()
        async with self._lock, self.store.transaction("reopen a ticket") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, Action.REOPEN, TicketState(row.state))
            if row.fingerprint is not None and row.open_key is None:
                other = await ts.live_ticket(session, row.fingerprint)
                if other is not None:
                    raise IllegalTransition(
                        f"cannot reopen ticket {number}: the same fault is open as "
                        f"{other.number}", number, Action.REOPEN, TicketState(row.state))
            event = await self._move(session, row, target, K.REOPENED, at, actor,
                                     _text(note, "note", False))
        return self._emit([event])

    async def set_resolve_due(self, number: str, actor: str, due: float,
                              note: str = "") -> list[TicketEvent]:
        """Set the repair deadline agreed with the site representative."""
        at = self.clock()
        async with self._lock, self.store.transaction("set a deadline") as session:
            row = await ts.by_number(session, number)
            if row.state in ("resolved", "verified", "closed"):
                raise IllegalTransition(f"cannot set the repair deadline of ticket {number}: "
                                        f"it is {row.state}", number, Action.RESOLVE,
                                        TicketState(row.state))
            if due <= ts.epoch(row.opened_at):  # type: ignore[operator]
                raise ValueError("the repair deadline must be after the ticket was opened")
            row.resolve_due, row.resolve_to_agree = ts.moment(due), False
            if due > at:
                row.resolve_breached_at = None  # a new deadline can be breached anew
            stamp = datetime.fromtimestamp(due, UTC).isoformat(timespec="minutes")
            event = await ts.add_event(session, row, K.DEADLINE_SET, at, actor=actor,
                                       note=f"repair due {stamp}"
                                       + (f": {note.strip()}" if note.strip() else ""))
        return self._emit([event])

    async def add_feedback(self, number: str, actor: str, rating: int,
                           comment: str = "") -> list[TicketEvent]:
        """Return-visit feedback (用户回访): a rating 1–5 and a comment."""
        if not 1 <= rating <= 5:
            raise ValueError("rating must be 1 to 5")
        at = self.clock()
        async with self._lock, self.store.transaction("record feedback") as session:
            row = await ts.by_number(session, number)
            if row.state not in ("resolved", "verified", "closed"):
                raise IllegalTransition(f"cannot record feedback on ticket {number}: it is "
                                        f"{row.state}; feedback follows the service",
                                        number, Action.CLOSE, TicketState(row.state))
            text = _text(comment, "comment", False)
            session.add(FeedbackRow(ticket_id=row.id, at=ts.moment(at), rating=rating,
                                    comment=text, recorded_by=_text(actor, "actor")))
            event = await ts.add_event(session, row, K.FEEDBACK, at, actor=actor,
                                       note=f"rating {rating}" + (f": {text}" if text else ""))
        return self._emit([event])

    # -- read side -------------------------------------------------------------------
    async def list_tickets(self, *, site: str | None = None, state: str | None = None,
                           kind: str | None = None, device: str | None = None,
                           limit: int = 200) -> list[ts.Ticket]:
        query = select(TicketRow).order_by(TicketRow.id.desc()).limit(max(1, min(limit, 5000)))
        if site:
            query = query.where(TicketRow.site == site)
        if state == "live":
            query = query.where(TicketRow.state != "closed")
        elif state:
            query = query.where(TicketRow.state == state)
        if kind:
            query = query.where(TicketRow.kind == kind)
        if device:
            query = query.where(TicketRow.device == device)
        async with self.store.transaction("list tickets") as session:
            return [await ts.view(session, row) for row in await session.scalars(query)]

    async def get(self, number: str) -> ts.TicketDetail:
        async with self.store.transaction("read a ticket") as session:
            return await ts.detail(session, await ts.by_number(session, number))

    async def events_after(self, after_id: int, limit: int = 500,
                           since: float | None = None) -> list[tuple[int, TicketEvent]]:
        """Stored events after a position (row id), optionally from a time on."""
        async with self.store.transaction("read ticket events") as session:
            return await ts.events_after(session, after_id, limit, since)

    # -- helpers -----------------------------------------------------------------------
    async def _act(self, number: str, action: Action, kind: K, actor: str,
                   note: str) -> list[TicketEvent]:
        at = self.clock()
        async with self._lock, self.store.transaction(f"{action.value} a ticket") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, action, TicketState(row.state))
            event = await self._move(session, row, target, kind, at, actor,
                                     _text(note, "note", False))
        return self._emit([event])

    async def _record(self, session: AsyncSession, row: TicketRow, engineer: str, work: str,
                      parts: tuple[PartReplaced, ...], at: float, cause: str = "") -> None:
        record = ServiceRecordRow(ticket_id=row.id, at=ts.moment(at), engineer=engineer,
                                  work_done=work, cause=_text(cause, "cause", False) or None,
                                  visit_id=await visits.open_visit_id(session, row.id))
        session.add(record)
        await session.flush()
        today = datetime.fromtimestamp(at, ZoneInfo(self._terms(row.site).timezone)).date()
        for part in parts:
            if part.quantity < 1:
                raise ValueError("a part's quantity must be at least 1")
            if part.unit_price_cents is not None and part.unit_price_cents < 0:
                raise ValueError("a part's price cannot be negative")
            device_id = part.device or row.device
            device = await session.get(DeviceRow, device_id) if device_id else None
            warranty = device.warranty_until if device else None
            session.add(ServicePartRow(record_id=record.id, device=device_id,
                                       part=_text(part.part, "part"), quantity=part.quantity,
                                       coverage="at_cost" if part.consumable
                                       else coverage(warranty, today),
                                       warranty_until=warranty,
                                       unit_price_cents=part.unit_price_cents,
                                       consumable=part.consumable))
