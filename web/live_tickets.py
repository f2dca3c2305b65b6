"""The live tickets the pages list, read from the store once per ticket change.

Measured with 5,000 devices and ten clients reading (bench/read_bench.py): the overview
page's own work was 10 ms, but its one store query waited 0.8 s (p50) to 7.8 s (p99)
behind the ticket stage's and writer's — each step of a query through the driver's
thread waits for a turn of the busy event loop.  The list changes only when a ticket
does: the daemon counts ticket changes (``DaemonView.ticket_changes``), so a page asks
the store again only after one.  Every ``MAX_AGE`` seconds it is also asked again in
the background (a page meanwhile gets the copy): a safety net, not a source of waits.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from elvwatch.tickets.ticket_store import Ticket
from elvwatch.web.view import DaemonView

LIMIT = 5000
# Asked again at least this often (seconds), whatever the count says.
MAX_AGE = 15.0


class LiveTickets:
    def __init__(self, view: DaemonView) -> None:
        self._view = view
        self._tickets: list[Ticket] | None = None
        self._changes = -1
        self._at = 0.0
        self._refresh: asyncio.Task[list[Ticket]] | None = None

    async def get(self) -> list[Ticket]:
        """Every ticket but the closed ones, newest first (at most LIMIT)."""
        if self._view.tickets is None:
            return []
        if self._tickets is None or self._view.ticket_changes != self._changes:
            return list(await self._ask())
        if time.monotonic() - self._at > MAX_AGE and (
                self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._ask(), name="live tickets")
            # A failed refresh (store away) is the next page's to report, not a task's.
            self._refresh.add_done_callback(lambda t: t.cancelled() or t.exception())
        return list(self._tickets)

    async def _ask(self) -> list[Ticket]:
        assert self._view.tickets is not None
        # Counted before asking: a change committed while the query runs is asked
        # about again next time.
        changes, now = self._view.ticket_changes, time.monotonic()
        tickets = await self._view.tickets.list_tickets(state="live", limit=LIMIT)
        self._tickets, self._changes, self._at = tickets, changes, now
        return tickets


LIVE_TICKETS = web.AppKey("live_tickets", LiveTickets)
