"""The check scheduler: every check of every device, on time, under caps.

One asyncio task (the dispatcher) sleeps until the earliest check is due and starts it
as its own task, so a dead or slow device never delays another one.  Each run:

1. waits for its host's slot (``per_host_concurrency``), *then* for a global slot
   (``max_concurrency``) — in that order so a slow host queues on its own semaphore
   instead of holding global slots others could use;
2. runs the prober with the check's timeout owned by the scheduler: the dispatcher keeps
   the running probes' deadlines in a heap and cancels a probe that overruns, which is
   recorded as ``down`` (one heap entry per run instead of a timer per run — at 20,000
   devices the timers were a measurable share of the CPU);
3. hands the Observation to ``on_observation``.

A check whose probe has a starter (ICMP to an address: one request, one answer) takes
a fast path when both slots are free at once: no task and no timer of its own — the
probe calls back when the reply or its deadline comes.  A task and a deadline per ping
were about a third of the daemon's CPU per ping against fping (bench/icmp_bench.py).

Runs keep a fixed cadence (``due += interval``), so lag never accumulates; a run that
is still going when its next one falls due skips that one (counted as an overrun).
A device whose first check (its reachability check) keeps failing has its other
checks backed off, doubling up to ``backoff_max``; the first check itself never backs
off, so a recovery is seen within one normal interval, and a recovery brings the
backed-off checks forward at once.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from elvwatch.probes.base import Check, Observation, Status, Target
from elvwatch.probes.memory import CheckMemory, remembering
from elvwatch.probes.registry import Starter, prober_for, starter_for
from elvwatch.probes.runner import failed, timed_out
from elvwatch.probes.sharing import Shared, sharing

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_SAMPLES = 100_000
# Checks due within this much of now start together, and deadlines are enforced this
# late at most: at 1,000+ checks a second the dispatcher then wakes once per batch
# instead of once per check (and once per expired deadline, most of them stale).
DISPATCH_QUANTUM = 0.005


class Limiter:
    """A counting semaphore whose acquire is O(1).

    ``asyncio.Semaphore`` of Python 3.11 scans its whole waiter list on every acquire;
    with thousands of checks queued behind the global cap that made the scheduler's CPU
    grow with the fleet.  Slots are handed straight to the next waiter on release."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits; never blocks."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


@dataclass(slots=True)
class _Job:
    target: Target
    check: Check
    primary: bool
    due: float
    generation: int
    running: bool = False
    backoff: float = 0.0  # extra seconds added to the interval while the device is down
    run: int = 0  # counts runs, so a stale deadline never cancels a later run
    probing: asyncio.Task[Any] | None = None  # set while the prober runs
    expired: bool = False  # the dispatcher cancelled the probe for its timeout
    # What the check remembers between runs; dropped with the job (probes/memory.py).
    memory: CheckMemory = field(default_factory=CheckMemory)


@dataclass(slots=True)
class SchedulerStats:
    """Self-metrics, read by the collector at scrape time."""

    in_flight: int = 0
    runs: Counter[str] = field(default_factory=Counter)  # by status
    overruns: int = 0
    # Per bucket (not cumulative): runs whose lag fell in (previous bound, bound].
    lag_bucket_counts: list[int] = field(default_factory=lambda: [0] * len(LAG_BUCKETS))
    lag_sum: float = 0.0
    lag_count: int = 0
    lag_recent: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))

    def observe_lag(self, lag: float) -> None:
        self.lag_sum += lag
        self.lag_count += 1
        self.lag_recent.append(lag)
        # Counted in the first bucket that holds it; the exposition makes them cumulative.
        index = bisect.bisect_left(LAG_BUCKETS, lag)
        if index < len(LAG_BUCKETS):
            self.lag_bucket_counts[index] += 1


class Scheduler:
    def __init__(
        self,
        on_observation: Callable[[Observation], None],
        *,
        max_concurrency: int = 512,
        per_host_concurrency: int = 4,
        jitter: float = 1.0,
        backoff_max: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        shared: Shared | None = None,
    ) -> None:
        self._on_observation = on_observation
        # What the probes share (probes/sharing.py); None: what runs outside a daemon do.
        self._shared = shared
        self._global = Limiter(max_concurrency)
        self._per_host_limit = per_host_concurrency
        self._hosts: dict[str, Limiter] = {}
        self._jitter = jitter
        self._backoff_max = backoff_max
        self._clock = clock
        self._rng = rng or random.Random()
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._by_device: dict[str, list[_Job]] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        # Deadlines of running probes: (deadline, seq, job, its run number).
        self._deadlines: list[tuple[float, int, _Job, int]] = []
        self._sleep_until = 0.0  # when the dispatcher wakes next unless woken
        self._seq = 0
        self._generation = 0
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._immediate = 0  # checks in flight on the fast path (no task to wait for)
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.stats = SchedulerStats()

    # -- configuration -------------------------------------------------------------
    def set_targets(self, targets: Iterable[tuple[Target, tuple[Check, ...]]]) -> None:
        """Replace the set of checks.  Checks that stay keep their phase."""
        self._generation += 1
        now = self._clock()
        old = self._jobs
        self._jobs = {}
        self._by_device = {}
        self._heap = []
        for target, checks in targets:
            for index, check in enumerate(checks):
                key = (target.device, check.name)
                prev = old.get(key)
                if prev is not None and prev.check.interval == check.interval:
                    due = prev.due
                else:
                    due = now + self._rng.uniform(0, self._jitter * check.interval)
                if prev is not None:
                    # The same job object: a run in flight clears *its* running flag
                    # when it ends, and its deadline still applies.
                    job = prev
                    job.target, job.check, job.primary = target, check, index == 0
                    job.due, job.generation = due, self._generation
                else:
                    job = _Job(target, check, index == 0, due, self._generation)
                self._jobs[key] = job
                self._by_device.setdefault(target.device, []).append(job)
                self._push(job)
        hosts = {job.target.host for job in self._jobs.values()}
        self._hosts = {h: s for h, s in self._hosts.items() if h in hosts}
        self._wakeup.set()

    @property
    def job_count(self) -> int:
        return len(self._jobs)

    def memory(self, device: str, check: str) -> CheckMemory | None:
        """What a scheduled check remembers between its runs (None: not scheduled)."""
        job = self._jobs.get((device, check))
        return job.memory if job is not None else None

    def _push(self, job: _Job) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (job.due, self._seq, (job.target.device, job.check.name)))

    # -- running -------------------------------------------------------------------
    async def run(self) -> None:
        """Dispatch until :meth:`stop`; every run it starts shares the daemon's sockets
        and pools (its task inherits :func:`sharing`)."""
        with sharing(self._shared) if self._shared is not None else contextlib.nullcontext():
            await self._dispatch()

    async def _dispatch(self) -> None:
        while not self._stopping:
            now = self._clock()
            horizon = now + DISPATCH_QUANTUM
            started: list[_Job] = []
            while self._heap and self._heap[0][0] <= horizon:
                due, _, key = heapq.heappop(self._heap)
                job = self._jobs.get(key)
                if job is None or job.due != due:
                    continue  # removed by a reload, or rescheduled
                self._start(job, now)
                started.append(job)
            for job in started:  # after the loop: a tiny interval must not spin it
                self._push(job)
            self._expire(now)
            wake = self._heap[0][0] if self._heap else now + 3600.0
            if self._deadlines:  # most are stale (the run ended): batch them too
                wake = min(wake, self._deadlines[0][0] + DISPATCH_QUANTUM)
            self._sleep_until = wake
            self._wakeup.clear()
            try:
                async with asyncio.timeout(max(wake - now, 0.0)):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _expire(self, now: float) -> None:
        """Cancel the probes that overran their timeout."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, job, run = heapq.heappop(deadlines)
            if job.run == run and job.probing is not None and not job.expired:
                job.expired = True
                job.probing.cancel()

    def _start(self, job: _Job, now: float) -> None:
        due = job.due
        job.due = due + job.check.interval + (0.0 if job.primary else job.backoff)
        if job.due <= now:  # far behind (suspended machine): realign instead of bursting
            job.due = now + job.check.interval
        if job.running:
            self.stats.overruns += 1
            return
        job.running = True
        starter = starter_for(job.check.type)
        if starter is not None and self._start_now(job, due, starter):
            return
        task = asyncio.create_task(self._run(job, due), name=f"check {job.target.device}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _host_limiter(self, host: str) -> Limiter:
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts[host] = Limiter(self._per_host_limit)
        return found

    def _start_now(self, job: _Job, due: float, starter: Starter) -> bool:
        """Start ``job`` on its probe's fast path if both slots are free now; False (and
        nothing held) when it must queue or its probe declines, so it runs as a task."""
        host, cap = self._host_limiter(job.target.host), self._global
        if not host.try_acquire():
            return False
        if not cap.try_acquire():
            host.release()
            return False
        job.run += 1
        run = job.run

        def done(obs: Observation) -> None:
            if job.run != run or not job.running:
                return  # answered twice: a bug in the probe, counted once
            self.stats.in_flight -= 1
            self._immediate -= 1
            cap.release()
            host.release()
            job.running = False
            self._finished(job, obs)
            if not self._immediate:
                self._idle.set()

        self.stats.in_flight += 1
        self._immediate += 1
        self._idle.clear()
        try:
            with remembering(job.memory):
                started = starter(job.target, job.check, done)
        except Exception as exc:
            done(failed(job.target, job.check, exc))
            started = True
        if not started:
            self.stats.in_flight -= 1
            self._immediate -= 1
            if not self._immediate:
                self._idle.set()
            cap.release()
            host.release()
            return False
        self.stats.observe_lag(max(0.0, self._clock() - due))
        return True

    async def _run(self, job: _Job, due: float) -> None:
        host = self._host_limiter(job.target.host)
        cap = self._global
        # Slots taken without a coroutine when free: this path runs for every check.
        try:
            if not host.try_acquire():
                await host.acquire()
            try:
                if not cap.try_acquire():
                    await cap.acquire()
                self.stats.observe_lag(max(0.0, self._clock() - due))
                self.stats.in_flight += 1
                try:
                    obs = await self._probe(job)
                finally:
                    self.stats.in_flight -= 1
                    cap.release()
            finally:
                host.release()
        finally:
            job.running = False
        self._finished(job, obs)

    def _finished(self, job: _Job, obs: Observation) -> None:
        self.stats.runs[obs.status.value] += 1
        if job.primary:
            self._after_primary(job, obs)
        self._on_observation(obs)

    async def _probe(self, job: _Job) -> Observation:
        target, check = job.target, job.check
        job.run += 1
        job.expired = False
        job.probing = asyncio.current_task()
        deadline = self._clock() + check.timeout
        self._seq += 1
        heapq.heappush(self._deadlines, (deadline, self._seq, job, job.run))
        if deadline + DISPATCH_QUANTUM < self._sleep_until:
            self._wakeup.set()
        started = time.perf_counter()
        try:
            with remembering(job.memory):
                return await prober_for(check.type)(target, check)
        except asyncio.CancelledError:
            task = job.probing
            if not job.expired or task is None:
                raise  # stopped, not timed out
            task.uncancel()
            return timed_out(target, check, time.perf_counter() - started)
        except Exception as exc:
            return failed(target, check, exc)
        finally:
            job.probing = None

    def _after_primary(self, job: _Job, obs: Observation) -> None:
        siblings = [j for j in self._by_device.get(job.target.device, ()) if not j.primary]
        if obs.status is Status.DOWN:
            for sib in siblings:
                sib.backoff = min(self._backoff_max, max(sib.check.interval, sib.backoff * 2))
            return
        now = self._clock()
        for sib in siblings:
            if sib.backoff:
                sib.backoff = 0.0
                sib.due = now
                self._push(sib)
        if siblings:
            self._wakeup.set()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop dispatching and let running checks finish (bounded by their timeouts)."""
        self._stopping = True
        self._wakeup.set()
        deadline = time.monotonic() + drain_timeout
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        # Fast-path checks end by their probe's own deadline (shorter than the timeout).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self._idle.wait()
