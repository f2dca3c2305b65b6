"""EventFollower: every stored ticket event once, in the order written, whichever process
wrote it — the daemon itself, ``elvwatch tickets …``, the API, a page.

This is how an action is notified (and a preventive visit's silence reaches the rule
engine) alike from everywhere: the ticket stage writes the event with the change, and
the daemon follows the table instead of trusting in-process callbacks.

Row ids are handed out when a transaction inserts, not when it commits: on PostgreSQL a
later id can commit first.  Ids above the newest handed out are read again from the
lowest unexplained gap; a gap waits ``gap_seconds`` for its transaction to commit, and
is then given up (a rolled-back transaction never fills it).  Handing an event out
twice is harmless (the notification log keys on the event id), losing one is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from elvwatch.tickets.events import TicketEvent

# Long enough for any ticket transaction in flight to commit.
GAP_SECONDS = 30.0
# Gaps followed at most (each is an id that never committed); the oldest go first.
MAX_GAPS = 10_000
BATCH = 500


class EventSource(Protocol):
    async def events_after(self, after_id: int, limit: int = 500,
                           since: float | None = None) -> list[tuple[int, TicketEvent]]: ...


class EventFollower:
    def __init__(self, source: EventSource, after: int, *, gap_seconds: float = GAP_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Follow events with ids above ``after`` (see TicketReads.event_position)."""
        self._source = source
        self._floor = after            # every id up to here is handed out or given up
        self._seen: set[int] = set()   # ids above the floor already handed out
        self._gaps: dict[int, float] = {}  # id missing above the floor -> first noticed
        self._gap_seconds = gap_seconds
        self._clock = clock

    @property
    def position(self) -> int:
        return self._floor

    async def poll(self, limit: int = BATCH) -> list[TicketEvent]:
        """The events not handed out yet, oldest first (at most ``limit`` rows read)."""
        rows = await self._source.events_after(self._floor, limit)
        now = self._clock()
        fresh: list[TicketEvent] = []
        top = self._floor
        for row_id, event in rows:
            top = max(top, row_id)
            self._gaps.pop(row_id, None)
            if row_id not in self._seen:
                self._seen.add(row_id)
                fresh.append(event)
        if top - self._floor > MAX_GAPS:
            # That many ids never committed: only the newest are worth waiting for.
            low = top - MAX_GAPS
            self._seen = {i for i in self._seen if i > low}
            self._gaps = {i: t for i, t in self._gaps.items() if i > low}
            self._floor = low
        for missing in range(self._floor + 1, top):
            if missing not in self._seen:
                self._gaps.setdefault(missing, now)
        self._advance(now)
        return fresh

    def _advance(self, now: float) -> None:
        """Move the floor over ids handed out and gaps given up, up to the first id
        still awaited (or the newest read)."""
        while True:
            following = self._floor + 1
            if following in self._seen:
                self._seen.discard(following)
            elif following in self._gaps and now - self._gaps[following] >= self._gap_seconds:
                del self._gaps[following]
            else:
                break
            self._floor = following
