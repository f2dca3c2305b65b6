"""One check run now, under its timeout, and what a run that did not return says.

The scheduler runs checks its own way (deadlines in a heap, daemon/scheduler.py) and
uses ``timed_out`` and ``failed`` for the same words; ``run_check`` is for a check run
once (``elvwatch probe``, ``/probe``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeConfigError,
    ProbeError,
    Reason,
    Status,
    Target,
    bounded,
)
from elvwatch.probes.registry import prober_for

log = logging.getLogger(__name__)


async def run_check(target: Target, check: Check) -> Observation:
    """Run one check now, under its timeout; never raises for a device's fault."""
    started = time.perf_counter()
    try:
        prober = prober_for(check.type)
        async with asyncio.timeout(check.timeout):
            return await prober(target, check)
    except TimeoutError:
        return timed_out(target, check, time.perf_counter() - started)
    except Exception as exc:
        return failed(target, check, exc)


def timed_out(target: Target, check: Check, latency: float) -> Observation:
    return Observation(target.device, check.name, Status.DOWN, latency=latency,
                       error=f"timeout after {check.timeout:g}s", reason=Reason.TIMEOUT)


def failed(target: Target, check: Check, exc: Exception) -> Observation:
    """What a probe that raised reports: its own error, or a crash, never the daemon's."""
    if isinstance(exc, ProbeError):
        reason = Reason.CONFIG if isinstance(exc, ProbeConfigError) else Reason.PROTOCOL
        return Observation(target.device, check.name, Status.UNKNOWN, error=bounded(str(exc)),
                           reason=reason)
    # A bug in a probe must not stop the others.
    log.error("probe %s of %s crashed", check.type, target.device, exc_info=exc)
    return Observation(target.device, check.name, Status.UNKNOWN,
                       error=bounded(f"probe error: {type(exc).__name__}: {exc}"),
                       reason=Reason.CRASH)
