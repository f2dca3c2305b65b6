"""What one check remembers from one run to its next (an SNMP agent's last uptime, what
detection found, a table's rows), owned by whoever runs the check again and again.

The daemon's scheduler keeps one :class:`CheckMemory` per scheduled check and hands it
to each run (:func:`remembering`); it is dropped with the check when a reload removes
the device, so a run still in flight then writes into a memory nobody keeps, never into
state a later device of the same id would find.  A probe reads its memory with
:func:`memory_of`; a run outside the scheduler (``elvwatch probe``, ``/probe``) gets a
fresh one, as a first poll.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_CURRENT: ContextVar[CheckMemory | None] = ContextVar("elvwatch_check_memory", default=None)


class CheckMemory:
    """One check's memory: one value per kind of thing remembered, made on first use."""

    def __init__(self) -> None:
        self._kept: dict[type[object], object] = {}

    def get(self, kind: type[T], make: Callable[[], T] | None = None) -> T:
        found = self._kept.get(kind)
        if not isinstance(found, kind):
            found = self._kept[kind] = (make or kind)()
        return found

    def __contains__(self, kind: type[object]) -> bool:
        return kind in self._kept


@contextlib.contextmanager
def remembering(memory: CheckMemory) -> Iterator[None]:
    """Run the checks started inside with ``memory`` (the context the run's task has)."""
    token = _CURRENT.set(memory)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def memory_of_run() -> CheckMemory:
    """The running check's memory; a fresh one for a run nobody repeats."""
    return _CURRENT.get() or CheckMemory()
