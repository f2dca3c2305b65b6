"""The read side of the ticket manager: lists, one ticket with its records, and the
stored events in the order they were written (for the notifiers)."""

from __future__ import annotations

from sqlalchemy import func, select

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.core import ManagerBase
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import TicketState
from elvwatch.tickets.schema import TicketEventRow, TicketRow
from elvwatch.tickets.store import from_epoch


class TicketReads(ManagerBase):
    async def list_tickets(self, *, site: str | None = None, state: str | None = None,
                           kind: str | None = None, device: str | None = None,
                           limit: int = 200) -> list[ts.Ticket]:
        """Newest first; ``state="live"``: every state but closed."""
        query = select(TicketRow).order_by(TicketRow.id.desc()).limit(max(1, min(limit, 5000)))
        if site:
            query = query.where(TicketRow.site == site)
        if state == "live":
            query = query.where(TicketRow.state != TicketState.CLOSED)
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

    async def event_position(self, since: float) -> int:
        """The position just before the first event stored at or after ``since``
        (or the last position, if there is none)."""
        async with self.store.transaction("read ticket events") as session:
            first = await session.scalar(select(func.min(TicketEventRow.id)).where(
                TicketEventRow.at >= from_epoch(since)))
            if first is not None:
                return int(first) - 1
            last = await session.scalar(select(func.max(TicketEventRow.id)))
            return int(last or 0)
