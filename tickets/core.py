"""The manager's shared state and the one way a ticket changes state (with its audit event).

Every change of state goes through :meth:`ManagerBase._move`, whoever asks for it (the
rule engine, the clocks, a person through the CLI, the API or a page): it stamps the
ticket's times, writes the audit event with the actor, and opens or ends a preventive
visit's silence, all in the caller's transaction.  Notifications are not sent from
here: the daemon follows the stored events (tickets.follower), so an action is
notified alike whichever process made it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.rules.silence import new_silence
from elvwatch.tickets import silence_store, visits
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.events import TicketEvent, TicketEventKind
from elvwatch.tickets.lifecycle import TicketState
from elvwatch.tickets.records import SYSTEM, Actor
from elvwatch.tickets.schema import SignOffRow, SupersededDeadlineRow, TicketRow
from elvwatch.tickets.sla import SiteTerms
from elvwatch.tickets.store import Store

K = TicketEventKind
LIVE_STATES = ("open", "acknowledged", "resolved", "verified")
RECOVERED_NOTE = "recovered without intervention"
AWAITING_NOTE = "device recovered; waiting for the engineer's service record"
DAY = 86400.0
# A preventive visit mutes its site's system while the engineer is on site: from the
# recorded arrival to the departure — at most this long, in case nobody records the
# departure: lens cleaning and walk tests must not open fault tickets.
VISIT_SILENCE_SECONDS = 8 * 3600.0

EventSink = Callable[[Sequence[TicketEvent]], None]


def when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="minutes")


class ManagerBase:
    def __init__(
        self,
        store: Store,
        sites: Callable[[], Mapping[str, SiteTerms]],
        clock: Callable[[], float] = time.time,
        *,
        verify_after_polls: int = 3,
        reopen_window: float = 7 * DAY,
        close_after: float | None = 7 * DAY,
        visit_silence: float = VISIT_SILENCE_SECONDS,
        on_events: EventSink | None = None,
    ) -> None:
        """``sites`` is called for the current terms (so a config reload is seen);
        ``close_after``: a ticket the site representative has not signed off is closed
        by the system this long after its recovery was confirmed (None: never);
        ``on_events`` gets every batch of events after its transaction committed."""
        self.store = store
        self.sites = sites
        self.clock = clock
        self.verify_after_polls = verify_after_polls
        self.reopen_window = reopen_window
        self.close_after = close_after
        self.visit_silence = visit_silence
        self.on_events = on_events
        self._lock = asyncio.Lock()

    def _emit(self, events: list[TicketEvent]) -> list[TicketEvent]:
        if events and self.on_events is not None:
            self.on_events(events)
        return events

    def _terms(self, site: str) -> SiteTerms:
        return self.sites().get(site) or SiteTerms(site=site, name=site)

    def _escalation(self, what: str, site: str) -> str:
        """The note of an escalation: who the site's contract names to tell."""
        names = self._terms(site).escalation
        return (f"{what}: escalated to {', '.join(names)}" if names
                else f"{what}: escalated (the site names no escalation contacts)")

    async def _move(self, session: AsyncSession, row: TicketRow, state: TicketState,
                    kind: TicketEventKind, at: float, actor: Actor | str,
                    note: str) -> TicketEvent:
        who = actor if isinstance(actor, Actor) else (SYSTEM if actor == "system"
                                                      else Actor(actor))
        previous = row.state
        row.state = state.value
        stamp = datetime.fromtimestamp(at, UTC)
        if state is TicketState.ACKNOWLEDGED:
            row.acknowledged_at = stamp
            if row.responded_at is None:
                row.responded_at = stamp
        elif state is TicketState.RESOLVED:
            row.resolved_at = stamp
            row.healthy_polls = 0
        elif state is TicketState.VERIFIED:
            row.verified_at = stamp
        elif state is TicketState.CLOSED:
            row.closed_at = stamp
            row.open_key = None
        elif state is TicketState.OPEN:  # reopened
            row.resolved_at = row.verified_at = row.closed_at = None
            row.recovered_without_intervention = row.awaiting_record = False
            row.signed_off_at = row.close_reason = None
            row.open_key = row.fingerprint
        if row.kind == "preventive":
            await self._visit(session, row, state, at, who)
        return await ts.add_event(session, row, kind, at, actor=who.name, note=note,
                                  from_state=previous, via=who.via or None)

    async def _visit(self, session: AsyncSession, row: TicketRow, state: TicketState,
                     at: float, who: Actor) -> None:
        """The silence ``visit-<ticket>`` of a preventive work order's site and system
        as its state changes.  Acknowledged: the engineer's arrival is not known yet, so
        the silence is opened for the time they are expected on site — from the ETA of
        the dispatch if it is later, else from now (an acknowledgement without an ETA,
        ``tickets ack`` of an engineer phoning from the site, means they are there); a
        recorded arrival then moves it (:meth:`_on_site`).  Completed: it ends unless an
        engineer is still on site (their departure ends it).  Closed: it ends."""
        if state is TicketState.ACKNOWLEDGED:
            eta = ts.epoch(row.eta)
            await self._mute_visit(session, row, max(at, eta or at), at, who)
        elif state is TicketState.CLOSED or (
                state is TicketState.RESOLVED
                and await visits.open_visit_id(session, row.id) is None):
            await silence_store.expire_in(session, f"visit-{row.number}", at)

    async def _on_site(self, session: AsyncSession, row: TicketRow, at: float, who: Actor,
                       *, arrived: bool) -> None:
        """A recorded arrival (re)starts a preventive visit's silence now, while the work
        order is still to do; the departure of the last engineer on site ends it."""
        if row.kind != "preventive":
            return
        if arrived and row.state in (TicketState.OPEN, TicketState.ACKNOWLEDGED):
            await self._mute_visit(session, row, at, at, who)
        elif not arrived and await visits.open_visit_id(session, row.id) is None:
            await silence_store.expire_in(session, f"visit-{row.number}", at)

    async def _mute_visit(self, session: AsyncSession, row: TicketRow, starts: float,
                          at: float, who: Actor) -> None:
        matchers = {"site": row.site} | ({"system": row.system} if row.system else {})
        await silence_store.save_in(session, new_silence(
            matchers, who=who.name, why=f"preventive visit {row.number}",
            until=starts + self.visit_silence, starts=starts, id=f"visit-{row.number}",
            now=at))

    async def _verified(self, session: AsyncSession, row: TicketRow, at: float,
                        note: str) -> list[TicketEvent]:
        """The system confirms the recovery (系统确认恢复); a sign-off given before
        closes the ticket now."""
        events = [await self._move(session, row, TicketState.VERIFIED, K.VERIFIED, at,
                                   SYSTEM, note)]
        if row.signed_off_at is not None:
            events.append(await self._close_signed(session, row, at))
        return events

    async def _close_signed(self, session: AsyncSession, row: TicketRow,
                            at: float) -> TicketEvent:
        signer = await session.scalar(select(SignOffRow.name).where(
            SignOffRow.ticket_id == row.id).order_by(SignOffRow.id.desc()).limit(1))
        row.close_reason = "signed_off"
        return await self._move(session, row, TicketState.CLOSED, K.CLOSED, at, SYSTEM,
                                f"accepted by {signer or 'the site representative'}")

    async def _supersede(self, session: AsyncSession, row: TicketRow, which: str, at: float,
                         actor: Actor, reason: str) -> str:
        """Keep the current ``which`` deadline (and its breach) before it is replaced;
        returns a note saying what it was."""
        due = row.response_due if which == "response" else row.resolve_due
        breached = row.response_breached_at if which == "response" \
            else row.resolve_breached_at
        if due is None:
            return ""
        session.add(SupersededDeadlineRow(
            ticket_id=row.id, which=which, due=due, severity=row.severity,
            breached_at=breached, replaced_at=ts.moment(at), replaced_by=actor.name[:128],
            reason=reason))
        return f"was due {when(ts.epoch(due) or 0.0)}" + ("; breached" if breached else "")
