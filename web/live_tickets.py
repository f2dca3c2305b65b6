"""The live tickets the pages list, read from the store once per ticket change.

Measured with 5,000 devices and ten clients reading (bench/read_bench.py): the overview
page's own work was 10 ms, but its one store query waited 0.8 s (p50) to 7.8 s (p99)
behind the ticket stage's and writer's — each step of a query through the driver's
thread waits for a turn of the busy event loop.  The list changes only when a ticket
does: the daemon counts ticket changes (``DaemonView.ticket_changes``), so a page asks
the store again only after one, and at least every ``MAX_AGE`` seconds.
"""

from __future__ import annotations

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

    async def get(self) -> list[Ticket]:
        """Every ticket but the closed ones, newest first (at most LIMIT)."""
        view = self._view
        if view.tickets is None:
            return []
        changes, now = view.ticket_changes, time.monotonic()
        if self._tickets is None or changes != self._changes or now - self._at > MAX_AGE:
            # Counted before asking: a change committed while the query runs is asked
            # about again next time.
            tickets = await view.tickets.list_tickets(state="live", limit=LIMIT)
            self._tickets, self._changes, self._at = tickets, changes, now
        return list(self._tickets)


LIVE_TICKETS = web.AppKey("live_tickets", LiveTickets)
