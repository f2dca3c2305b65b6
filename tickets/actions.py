"""What people do to a ticket's life: acknowledge, resolve with a service record,
complete a work order, verify, sign off, reopen.

This is the one path for every caller — the CLI, the JSON API and the pages call these
methods of :class:`elvwatch.tickets.manager.TicketManager` and nothing else.  Each action is one
transaction holding the change, its audit event (actor, and through what: cli, api,
page, link) and a preventive visit's silence; the running daemon follows the stored
events and notifies them (tickets.follower), so an action is notified alike from any
process.  A refused action (IllegalTransition, UnknownTicket, ValueError for bad
input) changes nothing.  ``actor`` is a name or a :class:`elvwatch.tickets.records.Actor`.
"""

from __future__ import annotations

from collections.abc import Mapping

from elvwatch.tickets import follow_ups, paperwork
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.core import K, ManagerBase
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import Action, IllegalTransition, TicketState, next_state
from elvwatch.tickets.records import (
    Actor,
    PartReplaced,
    ServiceRecord,
    SignOff,
    actor_of,
    choice,
    coverage,
    text,
)
from elvwatch.tickets.schema import ChecklistResultRow, SignOffRow, TicketRow

# The value types callers hand over live in tickets.records; importable from here too.
__all__ = ["PartReplaced", "ServiceRecord", "SignOff", "TicketActions", "coverage"]


class TicketActions(ManagerBase):
    async def acknowledge(self, number: str, actor: str | Actor,
                          note: str = "") -> list[TicketEvent]:
        """An engineer takes the ticket (the response the contract's deadline asks for)."""
        who = actor_of(actor)
        at = self.clock()
        async with self._lock, self.store.transaction("acknowledge a ticket") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, Action.ACKNOWLEDGE, TicketState(row.state))
            event = await self._move(session, row, target, K.ACKNOWLEDGED, at, who,
                                     text(note, "note", required=False))
        return self._emit([event])

    async def resolve(self, number: str, actor: str | Actor,
                      record: ServiceRecord) -> list[TicketEvent]:
        """Resolve with the engineer's service record (a preventive work order is
        completed with :meth:`complete_preventive` instead).  Accepted too on a ticket
        resolved by its device's recovery and waiting for this record; if the probes
        have already seen the device healthy long enough, it is verified at once."""
        who = actor_of(actor)
        engineer = text(record.engineer, "engineer", limit=200)
        work = text(record.work_done, "work done")
        at = self.clock()
        async with self._lock, self.store.transaction("resolve a ticket") as session:
            row = await ts.by_number(session, number)
            if row.kind == "preventive":
                raise ValueError(f"{number} is a preventive work order: complete it with its "
                                 "checklist results")
            awaiting = row.awaiting_record
            target = next_state(number, Action.RESOLVE, TicketState(row.state),
                                awaiting_record=awaiting)
            tz = self._terms(row.site).timezone
            await paperwork.write_record(session, row, engineer, work, record.parts, at, tz,
                                         record.cause)
            replaced = await paperwork.replace_devices(session, row, record.replacements, at,
                                                       tz, who)
            if row.responded_at is None:
                row.responded_at = ts.moment(at)  # an engineer's repair is a response
            note = f"{engineer}: {work}"
            if awaiting:
                row.awaiting_record = False
                events = [await ts.add_event(session, row, K.RESOLVED, at, actor=who.name,
                                             note=note + " (service record after the "
                                                         "device recovered)",
                                             from_state=row.state, via=who.via or None)]
                if not row.fault_active and row.healthy_polls >= self.verify_after_polls:
                    events += await self._verified(
                        session, row, at, f"device healthy for {row.healthy_polls} polls")
            else:
                events = [await self._move(session, row, target, K.RESOLVED, at, who, note)]
            for change in replaced:
                events.append(await ts.add_event(session, row, K.DEVICE_REPLACED, at,
                                                 actor=who.name, note=change,
                                                 via=who.via or None))
        return self._emit(events)

    async def complete_preventive(self, number: str, actor: str | Actor, engineer: str,
                                  results: Mapping[str, tuple[bool, str]],
                                  work_done: str = "",
                                  devices: Mapping[str, str] | None = None
                                  ) -> list[TicketEvent]:
        """Complete a work order: every checklist item needs a result (ok, note).  Each
        item not ok opens a follow-up ticket (about ``devices[item]`` if named)."""
        who = actor_of(actor)
        engineer = text(engineer, "engineer", limit=200)
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
                                               note=text(note, "note", required=False),
                                               at=ts.moment(at)))
            failed = [item for item in row.checklist if not results[item][0]]
            summary = work_done.strip() or "checklist done"
            await paperwork.write_record(session, row, engineer, text(summary, "work"), (),
                                         at, self._terms(row.site).timezone)
            if row.responded_at is None:
                row.responded_at = ts.moment(at)
            note = f"{engineer}: {summary}" + (f"; not ok: {', '.join(failed)}" if failed else "")
            event = await self._move(session, row, target, K.RESOLVED, at, who, note)
            follow = await follow_ups.open_follow_ups(
                session, row, self._terms(row.site),
                [follow_ups.FailedItem(item, results[item][1], (devices or {}).get(item))
                 for item in failed], engineer, who, at, self._escalation)
        return self._emit([event, *follow])

    async def verify(self, number: str, actor: str | Actor,
                     sign_off: SignOff | None = None) -> list[TicketEvent]:
        """Confirm a recovery by hand (the probes do it for a watched device); refused
        while the device is still failing or its service record is owed.  With
        ``sign_off`` this is :meth:`sign_off` (the site representative's acceptance)."""
        if sign_off is not None:
            return await self.sign_off(number, actor, sign_off)
        who = actor_of(actor)
        at = self.clock()
        async with self._lock, self.store.transaction("verify a ticket") as session:
            row = await ts.by_number(session, number)
            target = next_state(number, Action.VERIFY, TicketState(row.state),
                                device_failing=_failing(row),
                                awaiting_record=row.awaiting_record)
            events = [await self._move(session, row, target, K.VERIFIED, at, who,
                                       "recovery confirmed by hand")]
            if row.signed_off_at is not None:
                events.append(await self._close_signed(session, row, at))
        return self._emit(events)

    async def sign_off(self, number: str, actor: str | Actor,
                       sign: SignOff) -> list[TicketEvent]:
        """The site representative accepts the result (用户已验收): through the signed
        link, or as a paper receipt an engineer records.  Closes the ticket when the
        recovery is confirmed (or needs no confirmation); otherwise it closes when the
        probes confirm it.  Refused while the device fails or the record is owed.  On a
        ticket the system closed for want of a sign-off it is recorded (audit trail,
        receipt) and the ticket stays closed: the work was done, nothing is reopened."""
        who = actor_of(actor)
        name = text(sign.name, "sign-off name", limit=200)
        comment = text(sign.comment, "comment", required=False)
        channel = choice(sign.channel, "sign-off channel", ("link", "paper"))
        receipt = text(sign.receipt, "receipt", required=False, limit=64)
        at = self.clock()
        async with self._lock, self.store.transaction("sign off a ticket") as session:
            row = await ts.by_number(session, number)
            state = TicketState(row.state)
            late = state is TicketState.CLOSED
            next_state(number, Action.SIGN_OFF, state, device_failing=_failing(row),
                       awaiting_record=row.awaiting_record,
                       signed_off=row.signed_off_at is not None,
                       auto_closed=row.close_reason == "no_sign_off")
            session.add(SignOffRow(ticket_id=row.id, name=name, at=ts.moment(at),
                                   comment=comment, channel=channel,
                                   recorded_by=who.name if channel == "paper" else None,
                                   receipt=receipt or None))
            row.signed_off_at = ts.moment(at)
            note = f"signed off by {name}" + (
                f" on paper receipt {receipt}" if receipt else
                " on a paper receipt" if channel == "paper" else "") + (
                " after the auto-close" if late else "") + (
                f": {comment}" if comment else "")
            events = [await ts.add_event(session, row, K.SIGNED_OFF, at, actor=who.name,
                                         note=note, from_state=row.state,
                                         via=who.via or None)]
            if not late and (state is TicketState.VERIFIED or not ts.needs_verification(row)):
                row.close_reason = "signed_off"
                events.append(await self._move(session, row, TicketState.CLOSED, K.CLOSED,
                                               at, who, f"accepted by {name}"))
        return self._emit(events)

    async def reopen(self, number: str, actor: str | Actor,
                     note: str = "") -> list[TicketEvent]:
        who = actor_of(actor)
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
            event = await self._move(session, row, target, K.REOPENED, at, who,
                                     text(note, "note", required=False))
        return self._emit([event])


def _failing(row: TicketRow) -> str | None:
    """The device named in refusals while the ticket's fault is still firing."""
    return (row.device or row.number) if row.fault_active else None
