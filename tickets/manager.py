"""TicketManager: fault transitions and people's actions in, tickets and TicketEvents out.

Every call is one database transaction, serialised by one lock: a change and its audit
events are stored together or not at all, and everything the manager knows is in the
store — after a restart (or SIGKILL) it simply carries on.  Calls are idempotent where
a restart can repeat them: a FIRING for a fault whose ticket is live changes nothing,
a CLEARED for a resolved ticket changes nothing, a breach or work order is written once.

Episodes: one ticket per fault fingerprint while it is live (open..verified; the
``open_key`` unique constraint guarantees it).  A recurrence of a resolved or verified
ticket, or of a closed one resolved within ``reopen_window`` seconds, reopens that same
ticket and counts it; later ones open a new ticket.

People's actions are in :mod:`elvwatch.tickets.actions` (the life),
:mod:`elvwatch.tickets.deadlines` (agreed deadlines, reclassification),
:mod:`elvwatch.tickets.paperwork` (feedback, warranty claims),
:mod:`elvwatch.tickets.intake` (tickets from people) and the read side in
:mod:`elvwatch.tickets.reads`; SLA clocks, closing without a sign-off and preventive work
orders in :meth:`tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.rules.faults import FaultState, FaultTransition, Severity
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.actions import TicketActions
from elvwatch.tickets.core import AWAITING_NOTE, DAY, LIVE_STATES, RECOVERED_NOTE, K, when
from elvwatch.tickets.deadlines import DeadlineActions
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.intake import TicketIntake
from elvwatch.tickets.lifecycle import IN_HAND, WORKED, TicketState
from elvwatch.tickets.paperwork import TicketPaperwork
from elvwatch.tickets.preventive import WorkOrderDue, due_work_orders
from elvwatch.tickets.reads import TicketReads
from elvwatch.tickets.records import SYSTEM
from elvwatch.tickets.schema import FaultLogRow, TicketRow
from elvwatch.tickets.sla import SiteTerms, breaches, deadlines
from elvwatch.tickets.store import DeviceRow, to_epoch

log = logging.getLogger(__name__)


class TicketManager(TicketActions, DeadlineActions, TicketPaperwork, TicketIntake,
                    TicketReads):
    # -- fault transitions ---------------------------------------------------------
    async def handle(self, transitions: Sequence[FaultTransition]) -> list[TicketEvent]:
        """Turn a batch of fault transitions into tickets, in one transaction.

        Parents go first, so a batch holding a switch and the cameras behind it
        attaches the cameras to the switch's new ticket."""
        ordered = sorted(transitions, key=lambda t: t.root_cause is not None)
        async with self._lock, self.store.transaction("handle fault transitions") as session:
            events: list[TicketEvent] = []
            for transition in ordered:
                events += await self._on_fault(session, transition)
        return self._emit(events)

    async def _on_fault(self, session: AsyncSession, t: FaultTransition) -> list[TicketEvent]:
        log_row = FaultLogRow(
            fingerprint=t.fingerprint, rule=t.rule, site=t.site, device=t.device,
            previous=t.previous.value, state=t.state.value, at=ts.moment(t.at),
            severity=t.severity, root_cause=t.root_cause, suppressed_by=t.suppressed_by,
            ticket_id=None, summary=t.summary)
        session.add(log_row)
        events: list[TicketEvent] = []
        if t.root_cause is not None:
            parent = await self._parent_ticket(session, t.root_cause)
            if parent is not None:
                log_row.ticket_id = parent.id
                if t.state is FaultState.FIRING:
                    await ts.attach(session, parent, t.device, "affected", t.at)
                    events += await self._adopted(session, t, parent)
                elif t.state in (FaultState.CLEARED, FaultState.INACTIVE):
                    await ts.mark_cleared(session, parent.id, t.device, t.at)
            return events
        if t.suppressed_by is not None:
            return events  # recorded; the rule engine tickets it on expiry if still firing
        if t.state is FaultState.FIRING:
            row, events = await self._firing(session, t)
            log_row.ticket_id = row.id
        elif t.state in (FaultState.CLEARED, FaultState.INACTIVE):
            live = await ts.live_ticket(session, t.fingerprint)
            if live is not None:
                log_row.ticket_id = live.id
                events = await self._cleared(session, live, t.at)
        return events

    async def _adopted(self, session: AsyncSession, t: FaultTransition,
                       parent: TicketRow) -> list[TicketEvent]:
        """A fault with a ticket of its own is now explained by a parent's fault: the
        parent's ticket carries it, so its own is resolved (not left open twice).  Its
        fault is then followed on the parent's ticket; should it outlast the parent's,
        the engine reports it firing alone again and :meth:`_firing` reopens it."""
        own = await ts.live_ticket(session, t.fingerprint)
        if own is None or own.id == parent.id or not own.fault_active:
            return []
        own.fault_active, own.fault_cleared_at = False, None
        if own.state not in IN_HAND:
            return []
        return [await self._move(session, own, TicketState.RESOLVED, K.RESOLVED, t.at,
                                 "system", f"attached to {parent.number}")]

    async def _parent_ticket(self, session: AsyncSession, root_cause: str) -> TicketRow | None:
        # root_cause names the parent's fault fingerprint or, failing that, its device.
        row = await ts.live_ticket(session, root_cause)
        if row is not None:
            return row
        return await session.scalar(
            select(TicketRow).where(TicketRow.device == root_cause,
                                    TicketRow.state.in_(LIVE_STATES),
                                    TicketRow.kind == "fault")
            .order_by(TicketRow.id.desc()).limit(1))

    async def _firing(self, session: AsyncSession,
                      t: FaultTransition) -> tuple[TicketRow, list[TicketEvent]]:
        events: list[TicketEvent] = []
        row = await ts.live_ticket(session, t.fingerprint)
        if row is None:
            row = await ts.recent_closed(session, t.fingerprint, t.at - self.reopen_window)
        if row is not None and row.resolved_at is not None and t.at < to_epoch(row.resolved_at):
            return row, events  # stale: from before the ticket was resolved (a replay)
        if row is None:
            row = await self._open(session, t)
            events.append(await ts.add_event(session, row, K.OPENED, t.at, note=t.summary))
            if row.severity == Severity.EMERGENCY:
                events.append(await ts.add_event(
                    session, row, K.ESCALATED, t.at,
                    note=self._escalation("emergency, at once", row.site)))
        elif row.state in WORKED and not row.fault_active:
            row.fault_active, row.fault_cleared_at = True, None
            if t.previous is FaultState.FIRING:
                # Never stopped: it was on a parent's ticket, and that parent recovered.
                note = "still failing after the parent fault cleared"
            else:
                row.recurrences += 1
                note = f"fault recurred (recurrence {row.recurrences})"
            events.append(await self._move(session, row, TicketState.OPEN, K.REOPENED, t.at,
                                           "system", note))
        else:
            row.fault_active, row.fault_cleared_at = True, None
        for device in t.affected:
            await ts.attach(session, row, device, "affected", t.at)
        return row, events

    async def _open(self, session: AsyncSession, t: FaultTransition) -> TicketRow:
        terms = self._terms(t.site)
        due = deadlines(terms, t.severity, t.at)
        device = await session.get(DeviceRow, t.device)
        opened = ts.moment(t.at)
        assert opened is not None
        row = TicketRow(
            number=await ts.next_number(session, opened.year), kind="fault",
            fingerprint=t.fingerprint, open_key=t.fingerprint, dedup_key=None, rule=t.rule,
            site=t.site, site_name=terms.name, language=terms.language, system=t.system,
            device=t.device, location=device.location if device else None,
            title_zh=f"{t.device} {t.name_zh}", title_en=f"{t.device}: {t.name_en}",
            severity=t.severity, state="open", summary=t.summary, opened_at=opened,
            response_due=ts.moment(due.response_due), resolve_due=ts.moment(due.resolve_due),
            resolve_to_agree=due.resolve_to_agree, fault_active=True, healthy_polls=0,
            recurrences=0, recovered_without_intervention=False, checklist=[], event_seq=0,
            updated_at=opened)
        session.add(row)
        await session.flush()  # the id, for the devices and events below
        await ts.attach(session, row, t.device, "primary", t.at)
        return row

    async def _cleared(self, session: AsyncSession, row: TicketRow,
                       at: float) -> list[TicketEvent]:
        if not row.fault_active:
            return []
        row.fault_active, row.fault_cleared_at, row.healthy_polls = False, ts.moment(at), 0
        if row.state == TicketState.OPEN:
            row.recovered_without_intervention = True
            return [await self._move(session, row, TicketState.RESOLVED, K.RESOLVED, at,
                                     SYSTEM, RECOVERED_NOTE)]
        if row.state == TicketState.ACKNOWLEDGED:
            # An engineer is on it: the repair is theirs, and so is the service record.
            row.awaiting_record = True
            return [await self._move(session, row, TicketState.RESOLVED, K.RESOLVED, at,
                                     SYSTEM, AWAITING_NOTE)]
        return []

    async def resync(self, firing: Collection[str], at: float, *,
                     keep_rules: tuple[str, ...] = ()) -> list[TicketEvent]:
        """After a restart the rule engine starts blank and never says CLEARED for a
        fault that ended while the daemon was down: once it has warmed up it hands the
        fingerprints firing now, and live tickets of any other fault count as cleared.
        Tickets of rules starting with one of ``keep_rules`` come from elsewhere (the
        Alertmanager webhook) and are left alone."""
        async with self._lock, self.store.transaction("resync tickets") as session:
            events: list[TicketEvent] = []
            for row in await ts.live_tickets(session):
                if keep_rules and (row.rule or "").startswith(keep_rules):
                    continue
                if row.kind == "fault" and row.fault_active and row.fingerprint not in firing:
                    events += await self._cleared(session, row, at)
        return self._emit(events)

    # -- device health (auto-verify) -------------------------------------------------
    async def device_healthy(self, device: str, polls: int = 1) -> list[TicketEvent]:
        return await self.devices_healthy([device], polls)

    async def devices_healthy(self, devices: Iterable[str],
                              polls: int = 1) -> list[TicketEvent]:
        """Each device passed ``polls`` more polls: its resolved tickets whose fault has
        cleared are verified (系统确认恢复) after ``verify_after_polls`` in a row — not
        closed: closing is the site representative's (or, after ``close_after``, the
        system's with that reason).  A ticket still owed its service record counts the
        polls but waits for the record."""
        at = self.clock()
        async with self._lock, self.store.transaction("count healthy polls") as session:
            events: list[TicketEvent] = []
            for row in await ts.tickets_of_devices(session, devices, ("resolved",)):
                if row.fault_active:
                    continue
                row.healthy_polls += polls
                if row.healthy_polls < self.verify_after_polls or row.awaiting_record:
                    continue
                events += await self._verified(
                    session, row, at, f"device healthy for {row.healthy_polls} polls")
        return self._emit(events)

    async def device_unhealthy(self, device: str) -> None:
        """A failed poll restarts the count of healthy polls."""
        async with self._lock, self.store.transaction("reset healthy polls") as session:
            for row in await ts.tickets_of_devices(session, [device], ("resolved",)):
                row.healthy_polls = 0

    # -- clocks ------------------------------------------------------------------------
    async def tick(self, now: float | None = None) -> list[TicketEvent]:
        """Report passed deadlines (once each, escalated to the site's contacts), close
        tickets nobody signed off within ``close_after``, and open the preventive work
        orders due."""
        now = self.clock() if now is None else now
        async with self._lock, self.store.transaction("check deadlines") as session:
            events: list[TicketEvent] = []
            for row in await ts.live_tickets(session):
                events += await self._breaches(session, row, now)
                events += await self._close_unsigned(session, row, now)
            for terms in self.sites().values():
                for order in due_work_orders(terms, now):
                    event = await self._work_order(session, terms, order, now)
                    if event is not None:
                        events.append(event)
        return self._emit(events)

    async def _breaches(self, session: AsyncSession, row: TicketRow,
                        now: float) -> list[TicketEvent]:
        events: list[TicketEvent] = []
        for breach in breaches(
                row.state, now, response_due=ts.epoch(row.response_due),
                resolve_due=ts.epoch(row.resolve_due),
                response_breached=row.response_breached_at is not None,
                resolve_breached=row.resolve_breached_at is not None):
            stamp = ts.moment(now)
            if breach.which == "response":
                row.response_breached_at = stamp
                row.response_breaches += 1
            else:
                row.resolve_breached_at = stamp
                row.resolve_breaches += 1
            what = f"{breach.which} deadline passed"
            events.append(await ts.add_event(session, row, K.BREACHED, now,
                                             note=f"{what} (due {when(breach.due)})"))
            if breach.which == "response" and breach.due <= to_epoch(row.opened_at):
                continue  # due "immediately": the contacts were told when it opened
            events.append(await ts.add_event(session, row, K.ESCALATED, now,
                                             note=self._escalation(what, row.site)))
        return events

    async def _close_unsigned(self, session: AsyncSession, row: TicketRow,
                              now: float) -> list[TicketEvent]:
        """Close a ticket ``close_after`` after its recovery was confirmed (or, needing
        no confirmation, after it was resolved) when nobody signed it off; a signed
        one whose recovery the probes never confirmed closes then too, as signed."""
        signed = row.signed_off_at is not None
        if row.state == TicketState.VERIFIED and signed:
            return [await self._close_signed(session, row, now)]  # signed before 0004
        if row.awaiting_record or self.close_after is None:
            return []
        if row.state == TicketState.VERIFIED:
            start = row.verified_at
        elif row.state == TicketState.RESOLVED and (signed or not ts.needs_verification(row)):
            start = row.resolved_at
        else:
            return []
        if start is None or now < to_epoch(start) + self.close_after:
            return []
        if signed:
            return [await self._close_signed(session, row, now)]
        row.close_reason = "no_sign_off"
        return [await self._move(session, row, TicketState.CLOSED, K.CLOSED, now, SYSTEM,
                                 f"auto-closed: no sign-off within "
                                 f"{self.close_after / DAY:g} days")]

    async def _work_order(self, session: AsyncSession, terms: SiteTerms, order: WorkOrderDue,
                          now: float) -> TicketEvent | None:
        exists = await session.scalar(select(TicketRow.id).where(
            TicketRow.dedup_key == order.dedup_key))
        if exists is not None:
            return None
        title_zh, title_en = order.titles
        opened = ts.moment(now)
        assert opened is not None
        row = TicketRow(
            number=await ts.next_number(session, opened.year), kind="preventive",
            fingerprint=None, open_key=None, dedup_key=order.dedup_key, rule=None,
            site=terms.site, site_name=terms.name, language=terms.language,
            system=order.system, device=None, location=None, title_zh=title_zh,
            title_en=title_en, severity=Severity.GENERAL.value, state="open", summary="",
            opened_at=opened, response_due=None, resolve_due=ts.moment(order.period.end),
            resolve_to_agree=False, fault_active=False, healthy_polls=0, recurrences=0,
            recovered_without_intervention=False, period=order.period.key,
            checklist=[item.id for item in order.checklist], event_seq=0, updated_at=opened)
        session.add(row)
        await session.flush()
        return await ts.add_event(session, row, K.PREVENTIVE_DUE, now,
                                  note=f"due {order.period.key}")
