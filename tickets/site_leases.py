"""Which poller serves a site now: one lease row per site (migration 0006).

Two pollers can watch one site; the centre applies the observations of the lease holder
only, so a check result is applied once and one rule engine sees one stream — one
ticket per fault.  The holder renews its lease with every batch; a lease not renewed
for its time to live (the site's check interval) is free, and the next batch of another
poller of the site takes it over.  A holder that comes back after its lease lapsed and
nobody took it keeps it, with its first ``since``: after a WAN outage its buffered
observations still count.

The row is read ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): of two centre processes
claiming one site at once, one decides and the other counts its poller as not holding
the lease for this batch, never waiting on the other.  Times are the centre's clock
(keep centre hosts on NTP).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from elvwatch.tickets.store import Base, Store, UTCDateTime, from_epoch, to_epoch


class SiteLeaseRow(Base):
    __tablename__ = "site_leases"

    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    poller_id: Mapped[str] = mapped_column(String(128))
    # When this poller took the site: its observations from before do not count.
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Lease:
    poller: str
    since: float
    expires: float


async def claim(store: Store, poller: str, sites: Iterable[str], now: float,
                ttl: Mapping[str, float]) -> dict[str, Lease | None]:
    """Take or renew ``poller``'s lease of each site; site → the lease as it stands
    after (None: the row is being claimed by another centre process right now).

    ``since`` of a lease nobody held is 0: everything its first holder saw counts (a
    poller that ran before the centre could be reached brings what it saw); of a lease
    taken over, when its last holder last renewed it: what the new holder saw after
    that follows the old holder's last observation in time."""
    out: dict[str, Lease | None] = {}
    async with store.transaction("claim site leases") as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        for site in sorted(sites):  # one order for every process: no deadlock
            expires = now + ttl[site]
            row = await session.scalar(select(SiteLeaseRow).where(SiteLeaseRow.site == site)
                                       .with_for_update(skip_locked=True))
            if row is None:
                taken = await session.scalar(
                    insert(SiteLeaseRow).values(site=site, poller_id=poller,
                                                since=from_epoch(0.0),
                                                expires_at=from_epoch(expires))
                    .on_conflict_do_nothing(index_elements=[SiteLeaseRow.site])
                    .returning(SiteLeaseRow.site))
                out[site] = Lease(poller, 0.0, expires) if taken is not None else None
                continue
            if row.poller_id == poller:
                row.expires_at = from_epoch(expires)
            elif to_epoch(row.expires_at) < now:
                row.since = from_epoch(to_epoch(row.expires_at) - ttl[site])
                row.poller_id, row.expires_at = poller, from_epoch(expires)
            out[site] = Lease(row.poller_id, to_epoch(row.since), to_epoch(row.expires_at))
    return out
