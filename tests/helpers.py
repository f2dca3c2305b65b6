"""Helpers the tests share: waiting for a condition instead of sleeping a fixed time, and
keeping checks' memories across a test's polls the way the daemon's scheduler does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from elvwatch.probes.memory import CheckMemory, remembering


async def until(check: Callable[[], Any] | Callable[[], Awaitable[Any]],
                what: str = "condition", timeout: float = 10.0, *,
                every: float = 0.02) -> Any:
    """Poll ``check`` (plain or async) until it gives something true, and return that;
    fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


class Memories(dict[str, CheckMemory]):
    """Each device's check memory across a test's polls (probes/memory.py), as the
    scheduler keeps one per scheduled check; ``pop(device)`` forgets a device."""

    @contextlib.contextmanager
    def of(self, device: str) -> Iterator[None]:
        with remembering(self.setdefault(device, CheckMemory())):
            yield
