"""Silences made through the API/CLI, kept in the store so a restart keeps them.

Config silences are not stored (the config is their home).  The rule engine's
``Silencer`` is filled with ``load()`` at start and after each change.  The ``*_in``
forms write inside the caller's transaction: a preventive visit's silence is opened
and ended in the same transaction as the work order's acknowledgement and completion.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.rules.silence import Silence
from elvwatch.tickets.schema import SilenceRow
from elvwatch.tickets.store import Store, from_epoch, to_epoch


async def save(store: Store, silence: Silence) -> None:
    async with store.transaction("save a silence") as session:
        await save_in(session, silence)


async def save_in(session: AsyncSession, silence: Silence) -> None:
    await session.merge(SilenceRow(
        id=silence.id, matchers={k: sorted(v) for k, v in silence.matchers.items()},
        created_by=silence.who, reason=silence.why, starts_at=from_epoch(silence.starts),
        ends_at=from_epoch(silence.until), created_at=from_epoch(silence.created),
        expired_at=None))


async def expire(store: Store, silence_id: str, at: float) -> bool:
    """End a silence at ``at`` (kept, listed as expired); False if unknown."""
    async with store.transaction("expire a silence") as session:
        return await expire_in(session, silence_id, at)


async def expire_in(session: AsyncSession, silence_id: str, at: float) -> bool:
    row = await session.get(SilenceRow, silence_id)
    if row is None:
        return False
    if to_epoch(row.ends_at) > at:
        row.ends_at = from_epoch(max(at, to_epoch(row.starts_at)))
        row.expired_at = from_epoch(at)
    return True


async def load(store: Store) -> list[Silence]:
    async with store.transaction("read silences") as session:
        rows = await session.scalars(select(SilenceRow).order_by(SilenceRow.starts_at))
        return [Silence(id=r.id, matchers={k: frozenset(v) for k, v in r.matchers.items()},
                        who=r.created_by, why=r.reason, until=to_epoch(r.ends_at),
                        starts=to_epoch(r.starts_at), created=to_epoch(r.created_at))
                for r in rows]
