"""What the probes of one daemon share between checks: the ICMP echo socket, Modbus
connections, ONVIF credential hold-offs.  One :class:`Shared` per daemon (its App makes
it and closes it when it stops), never a module's global.

Whoever runs probes for the daemon runs them inside :func:`sharing` (the scheduler's
dispatcher, the push sources the daemon starts, ``/probe``): the tasks started there
inherit it, and a probe takes its part with ``shared().get(Kind)``.  A run outside any
daemon (``elvwatch probe``, a test calling a probe) shares with the other such runs on
its event loop; :func:`close_loose` (or a probe module's own ``close_…``) closes what
they opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_CURRENT: ContextVar[Shared | None] = ContextVar("elvwatch_shared", default=None)
_LOOSE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Shared] = \
    weakref.WeakKeyDictionary()


class Shared:
    """One part per kind (a socket, a pool, a table), made on first use, closed in the
    reverse order of making: a part with a ``close()`` (plain or async) is closed."""

    def __init__(self) -> None:
        self._parts: dict[type[object], object] = {}

    def get(self, kind: type[T], make: Callable[[], T] | None = None) -> T:
        found = self._parts.get(kind)
        if not isinstance(found, kind):
            found = self._parts[kind] = (make or kind)()
        return found

    def find(self, kind: type[T]) -> T | None:
        """The part if it was made (nothing is made)."""
        found = self._parts.get(kind)
        return found if isinstance(found, kind) else None

    async def close_part(self, kind: type[object]) -> None:
        await _close(self._parts.pop(kind, None))

    async def close(self) -> None:
        while self._parts:
            await self.close_part(next(reversed(self._parts)))


async def _close(part: object) -> None:
    closer = getattr(part, "close", None)
    if callable(closer):
        result = closer()
        if inspect.isawaitable(result):
            await result


@contextlib.contextmanager
def sharing(found: Shared) -> Iterator[None]:
    """Run what starts inside (and the tasks it starts) with ``found``."""
    token = _CURRENT.set(found)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def shared() -> Shared:
    """The running daemon's, or, outside any daemon, the running event loop's."""
    found = _CURRENT.get()
    if found is not None:
        return found
    loop = asyncio.get_running_loop()
    loose = _LOOSE.get(loop)
    if loose is None:
        loose = _LOOSE[loop] = Shared()
    return loose


def every_loose() -> list[Shared]:
    """What runs outside a daemon share, on every event loop that has some."""
    return list(_LOOSE.values())


async def close_loose(kind: type[object] | None = None) -> None:
    """Close what runs outside a daemon opened on this loop (only ``kind``, if given)."""
    loose = _LOOSE.get(asyncio.get_running_loop())
    if loose is None:
        return
    if kind is None:
        await loose.close()
    else:
        await loose.close_part(kind)
