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

Human actions and queries are in :mod:`tickets.actions` (the base class); SLA and
preventive clocks in :meth:`tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rules.faults import FaultState, FaultTransition, Severity
from tickets import ticket_store as ts
from tickets.actions import TicketActions
from tickets.core import LIVE_STATES, RECOVERED_NOTE, K
from tickets.events import TicketEvent
from tickets.lifecycle import TicketState
from tickets.preventive import WorkOrderDue, due_work_orders
from tickets.schema import FaultLogRow, TicketRow
from tickets.sla import SiteTerms, breaches, deadlines
from tickets.store import DeviceRow
from tickets.store import _to_epoch as _epoch

log = logging.getLogger(__name__)


class TicketManager(TicketActions):
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
        if own.state not in ("open", "acknowledged"):
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
        if row is not None and row.resolved_at is not None and t.at < _epoch(row.resolved_at):
            return row, events  # stale: from before the ticket was resolved (a replay)
        if row is None:
            row = await self._open(session, t)
            events.append(await ts.add_event(session, row, K.OPENED, t.at, note=t.summary))
            if row.severity == Severity.EMERGENCY:
                events.append(await ts.add_event(
                    session, row, K.ESCALATED, t.at, note="emergency: contacts paged at once"))
        elif row.state in ("resolved", "verified", "closed") and not row.fault_active:
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
        if row.state in ("open", "acknowledged"):
            row.recovered_without_intervention = True
            return [await self._move(session, row, TicketState.RESOLVED, K.RESOLVED, at,
                                     "system", RECOVERED_NOTE)]
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
        cleared are verified after ``verify_after_polls`` in a row (and closed)."""
        at = self.clock()
        async with self._lock, self.store.transaction("count healthy polls") as session:
            events: list[TicketEvent] = []
            for row in await ts.tickets_of_devices(session, devices, ("resolved",)):
                if row.fault_active:
                    continue
                row.healthy_polls += polls
                if row.healthy_polls < self.verify_after_polls:
                    continue
                events.append(await self._move(
                    session, row, TicketState.VERIFIED, K.VERIFIED, at, "system",
                    f"device healthy for {row.healthy_polls} polls"))
                if self.auto_close:
                    events.append(await self._move(session, row, TicketState.CLOSED,
                                                   K.CLOSED, at, "system", "verified recovery"))
        return self._emit(events)

    async def device_unhealthy(self, device: str) -> None:
        """A failed poll restarts the count of healthy polls."""
        async with self._lock, self.store.transaction("reset healthy polls") as session:
            for row in await ts.tickets_of_devices(session, [device], ("resolved",)):
                row.healthy_polls = 0

    # -- clocks ------------------------------------------------------------------------
    async def tick(self, now: float | None = None) -> list[TicketEvent]:
        """Report passed deadlines (once each) and open the preventive work orders due."""
        now = self.clock() if now is None else now
        async with self._lock, self.store.transaction("check deadlines") as session:
            events: list[TicketEvent] = []
            for row in await ts.live_tickets(session):
                for breach in breaches(
                        row.state, now, response_due=ts.epoch(row.response_due),
                        resolve_due=ts.epoch(row.resolve_due),
                        response_breached=row.response_breached_at is not None,
                        resolve_breached=row.resolve_breached_at is not None):
                    stamp = ts.moment(now)
                    if breach.which == "response":
                        row.response_breached_at = stamp
                    else:
                        row.resolve_breached_at = stamp
                    what = f"{breach.which} deadline passed"
                    due = datetime.fromtimestamp(breach.due, UTC).isoformat(timespec="minutes")
                    events.append(await ts.add_event(session, row, K.BREACHED, now,
                                                     note=f"{what} (due {due})"))
                    events.append(await ts.add_event(session, row, K.ESCALATED, now,
                                                     note=f"{what}: escalation contacts told"))
            for terms in self.sites().values():
                for order in due_work_orders(terms, now):
                    event = await self._work_order(session, terms, order, now)
                    if event is not None:
                        events.append(event)
        return self._emit(events)

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
