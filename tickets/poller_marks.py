"""How far the centre has taken each poller's observations: the highest sequence number
applied, per poller (migration 0006).

A poller numbers its observations 1, 2, 3, … and sends them in order; a batch sent
again after its answer was lost carries numbers at or below the mark and is not applied
again.  The mark only moves forward, also when two centre processes write it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from elvwatch.tickets.store import Base, Store, UTCDateTime, from_epoch, to_epoch


@dataclass(frozen=True, slots=True)
class Taken:
    """The answer to a batch."""

    applied: int
    duplicates: int
    last_seq: int
    # "device: why" of observations not applied because the centre does not take them
    skipped: tuple[str, ...] = ()
    # observations of sites another poller holds the lease of (not applied)
    standby: int = 0
    # the sites whose lease the poller holds
    active: tuple[str, ...] = ()
    # how often the poller should send, a batch or none, to keep its leases
    renew_seconds: float = 1.0


class PollerMarkRow(Base):
    __tablename__ = "poller_marks"

    poller_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    # When the batch that moved the mark arrived.
    heard_at: Mapped[datetime] = mapped_column(UTCDateTime)


async def read_marks(store: Store) -> dict[str, tuple[int, float]]:
    """poller → (highest sequence number applied, when it arrived as epoch seconds)."""
    async with store.transaction("read the pollers' marks") as session:
        rows = await session.scalars(select(PollerMarkRow))
        return {r.poller_id: (r.last_seq, to_epoch(r.heard_at)) for r in rows}


async def advance_mark(store: Store, poller: str, seq: int, at: float) -> None:
    """Move ``poller``'s mark to ``seq`` unless it is already there or beyond."""
    async with store.transaction("record a poller's mark") as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(PollerMarkRow).values(poller_id=poller, last_seq=seq,
                                            heard_at=from_epoch(at))
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[PollerMarkRow.poller_id],
            set_={"last_seq": stmt.excluded.last_seq, "heard_at": stmt.excluded.heard_at},
            where=PollerMarkRow.last_seq < stmt.excluded.last_seq))
