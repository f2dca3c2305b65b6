"""The manager's shared state and the one way a ticket changes state (with its audit event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tickets import ticket_store as ts
from tickets.events import TicketEvent, TicketEventKind
from tickets.lifecycle import TicketState
from tickets.schema import TicketRow
from tickets.sla import SiteTerms
from tickets.store import Store

K = TicketEventKind
LIVE_STATES = ("open", "acknowledged", "resolved", "verified")
RECOVERED_NOTE = "recovered without intervention"

EventSink = Callable[[Sequence[TicketEvent]], None]


class ManagerBase:
    def __init__(
        self,
        store: Store,
        sites: Callable[[], Mapping[str, SiteTerms]],
        clock: Callable[[], float] = time.time,
        *,
        verify_after_polls: int = 3,
        reopen_window: float = 7 * 86400.0,
        auto_close: bool = True,
        on_events: EventSink | None = None,
    ) -> None:
        """``sites`` is called for the current terms (so a config reload is seen);
        ``auto_close``: a ticket the monitoring verified is closed by the system too;
        ``on_events`` gets every batch of events after its transaction committed."""
        self.store = store
        self.sites = sites
        self.clock = clock
        self.verify_after_polls = verify_after_polls
        self.reopen_window = reopen_window
        self.auto_close = auto_close
        self.on_events = on_events
        self._lock = asyncio.Lock()

    def _emit(self, events: list[TicketEvent]) -> list[TicketEvent]:
        if events and self.on_events is not None:
            self.on_events(events)
        return events

    def _terms(self, site: str) -> SiteTerms:
        return self.sites().get(site) or SiteTerms(site=site, name=site)

    async def _move(self, session: AsyncSession, row: TicketRow, state: TicketState,
                    kind: TicketEventKind, at: float, actor: str, note: str) -> TicketEvent:
        previous = row.state
        row.state = state.value
        stamp = datetime.fromtimestamp(at, UTC)
        if state is TicketState.ACKNOWLEDGED:
            row.acknowledged_at = stamp
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
            row.recovered_without_intervention = False
            row.open_key = row.fingerprint
        return await ts.add_event(session, row, kind, at, actor=actor, note=note,
                                  from_state=previous)


