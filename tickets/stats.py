"""Ticket figures for the metrics: one read of the store, done off the scrape path."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from elvwatch.tickets.core import LIVE_STATES
from elvwatch.tickets.schema import TicketRow
from elvwatch.tickets.store import Store, to_epoch


@dataclass(frozen=True, slots=True)
class LiveTicket:
    number: str
    site: str
    system: str
    severity: str
    state: str
    response_due: float | None
    resolve_due: float | None
    responded: bool
    device: str | None = None


@dataclass(frozen=True, slots=True)
class TicketStats:
    live: tuple[LiveTicket, ...] = ()
    # (site, system, severity) -> tickets ever opened / verified
    opened: dict[tuple[str, str, str], int] = field(default_factory=dict)
    verified: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (site, severity, "response" | "resolve") -> deadlines ever breached
    breaches: dict[tuple[str, str, str], int] = field(default_factory=dict)


async def ticket_stats(store: Store) -> TicketStats:
    async with store.transaction("read ticket figures") as session:
        live = [
            LiveTicket(row.number, row.site, row.system or "", row.severity, row.state,
                       _epoch(row.response_due), _epoch(row.resolve_due),
                       row.responded_at is not None, row.device)
            for row in await session.scalars(
                select(TicketRow).where(TicketRow.state.in_(tuple(LIVE_STATES))))]
        keys = (TicketRow.site, func.coalesce(TicketRow.system, ""), TicketRow.severity)
        opened = {(s, y, v): n for s, y, v, n in
                  (await session.execute(select(*keys, func.count()).group_by(*keys))).all()}
        verified = {(s, y, v): n for s, y, v, n in (await session.execute(
            select(*keys, func.count()).where(TicketRow.verified_at.is_not(None))
            .group_by(*keys))).all()}
        # Every breach ever recorded: a renegotiated deadline's stays counted, so the
        # counter never goes down.
        breaches: dict[tuple[str, str, str], int] = {}
        for which, column in (("response", TicketRow.response_breaches),
                              ("resolve", TicketRow.resolve_breaches)):
            rows = await session.execute(
                select(TicketRow.site, TicketRow.severity, func.sum(column))
                .where(column > 0).group_by(TicketRow.site, TicketRow.severity))
            for site, severity, count in rows.all():
                breaches[(site, severity, which)] = int(count)
    return TicketStats(tuple(live), opened, verified, breaches)


def _epoch(value: object) -> float | None:
    from datetime import datetime

    return to_epoch(value) if isinstance(value, datetime) else None
