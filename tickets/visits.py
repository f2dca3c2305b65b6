"""An engineer's visit to a site for a ticket: arrival, departure, and what belongs to it.

Each visit is one 服务回执单 (the plan's service receipt, one sheet per visit): the
service records written, the photos taken and the sign-off made while the engineer is
on site are linked to it.  Within one transaction (the caller's session):

* :func:`arrive` opens a visit; an engineer already on site for the ticket is refused
  (the first arrival stands), the ticket must not be closed;
* :func:`depart` ends the engineer's visit in progress; none in progress is refused;
* :func:`open_visit_id` is the visit in progress, which a record or photo belongs to.

Errors are ValueError with a message fit for the person who tapped the button.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.field_schema import VisitRow
from elvwatch.tickets.lifecycle import TicketState
from elvwatch.tickets.schema import TicketRow

MAX_NOTE = 1000


@dataclass(frozen=True, slots=True)
class Visit:
    id: int
    engineer: str
    arrived_at: float
    departed_at: float | None
    note: str


def _view(row: VisitRow) -> Visit:
    arrived = ts.epoch(row.arrived_at)
    assert arrived is not None
    return Visit(row.id, row.engineer, arrived, ts.epoch(row.departed_at), row.note)


async def open_visit_id(session: AsyncSession, ticket_id: int,
                        engineer: str | None = None) -> int | None:
    """The newest visit of the ticket still in progress (of ``engineer``, if given)."""
    query = select(VisitRow.id).where(VisitRow.ticket_id == ticket_id,
                                      VisitRow.departed_at.is_(None))
    if engineer is not None:
        query = query.where(VisitRow.engineer == engineer)
    return await session.scalar(query.order_by(VisitRow.id.desc()).limit(1))


async def arrive(session: AsyncSession, row: TicketRow, engineer: str, at: float,
                 note: str = "") -> Visit:
    if row.state == TicketState.CLOSED:
        raise ValueError(f"ticket {row.number} is closed: no visit can start on it")
    if await open_visit_id(session, row.id, engineer) is not None:
        raise ValueError(f"{engineer} is already on site for ticket {row.number}")
    visit = VisitRow(ticket_id=row.id, engineer=engineer, arrived_at=ts.moment(at),
                     departed_at=None, note=note.strip()[:MAX_NOTE])
    session.add(visit)
    await session.flush()
    return _view(visit)


async def depart(session: AsyncSession, row: TicketRow, engineer: str, at: float,
                 note: str = "") -> Visit:
    visit_id = await open_visit_id(session, row.id, engineer)
    if visit_id is None:
        raise ValueError(f"{engineer} has no visit in progress on ticket {row.number}: "
                         "record the arrival first")
    visit = await session.get(VisitRow, visit_id)
    assert visit is not None
    visit.departed_at = ts.moment(at)
    if note.strip():
        visit.note = (visit.note + "\n" if visit.note else "") + note.strip()[:MAX_NOTE]
    return _view(visit)


async def visits_of(session: AsyncSession, ticket_id: int) -> list[Visit]:
    rows = await session.scalars(select(VisitRow).where(VisitRow.ticket_id == ticket_id)
                                 .order_by(VisitRow.arrived_at, VisitRow.id))
    return [_view(row) for row in rows]
