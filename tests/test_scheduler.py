"""The scheduler against real TCP listeners on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elvwatch.daemon.scheduler import Scheduler
from elvwatch.probes.base import Check, Observation, Status, Target


def _address() -> str:
    return f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"


class Peer:
    """A TCP listener that answers a banner at once, late, or never."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.host = _address()
        self.active = 0
        self.peak = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            writer.write(b"READY\r\n")
            await writer.drain()
            await reader.read(100)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.active -= 1
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@asynccontextmanager
async def peers(*delays: float) -> AsyncIterator[list[Peer]]:
    started = [Peer(d) for d in delays]
    for p in started:
        await p.start()
    try:
        yield started
    finally:
        for p in started:
            await p.stop()


def check(peer: Peer, name: str = "banner", interval: float = 0.2,
          timeout: float = 1.0) -> Check:
    return Check(name, "tcp", interval=interval, timeout=timeout, port=peer.port,
                 params={"expect": "READY"})


@asynccontextmanager
async def running(sched: Scheduler) -> AsyncIterator[Scheduler]:
    task = asyncio.create_task(sched.run())
    try:
        yield sched
    finally:
        await sched.stop(drain_timeout=5)
        await task


async def test_slow_device_does_not_delay_the_others() -> None:
    seen: dict[str, list[Observation]] = defaultdict(list)
    async with peers(30.0, 0.0, 0.0, 0.0) as (slow, *fast):
        sched = Scheduler(lambda o: seen[o.device].append(o), jitter=0.0)
        sched.set_targets(
            [(Target("slow", slow.host), (check(slow, interval=0.2, timeout=1.5),))]
            + [(Target(f"fast{i}", p.host), (check(p, interval=0.2),)) for i, p in
               enumerate(fast)])
        async with running(sched):
            await asyncio.sleep(2.0)
    fast_runs = [len(seen[f"fast{i}"]) for i in range(3)]
    # 2 s at 0.2 s interval: about 10 runs each, none of them held up by the slow one.
    assert min(fast_runs) >= 7, fast_runs
    assert all(o.status is Status.OK for i in range(3) for o in seen[f"fast{i}"])
    slow_obs = seen["slow"]
    assert 1 <= len(slow_obs) <= 2
    assert slow_obs[0].status is Status.DOWN
    assert slow_obs[0].error == "timeout after 1.5s"
    assert sched.stats.overruns >= 5  # the slow check's due runs were skipped, not piled up
    lags = sorted(sched.stats.lag_recent)
    assert lags[int(len(lags) * 0.99) - 1] < 0.1


async def test_hung_check_times_out_on_time_when_its_next_run_is_far_away() -> None:
    # The dispatcher would sleep a minute until the next run; the deadline wakes it.
    seen: list[Observation] = []
    async with peers(30.0) as (hung,):
        sched = Scheduler(seen.append, jitter=0.0)
        sched.set_targets([(Target("hung", hung.host), (check(hung, interval=60, timeout=0.3),))])
        async with running(sched):
            started = time.monotonic()
            while not seen and time.monotonic() - started < 5:
                await asyncio.sleep(0.02)
            waited = time.monotonic() - started
            assert sched.stats.in_flight == 0
    assert [(o.status, o.error) for o in seen] == [(Status.DOWN, "timeout after 0.3s")]
    assert 0.3 <= waited < 2.0  # cancelled at its deadline, not at the next run


async def test_a_run_is_never_cancelled_by_an_earlier_runs_deadline() -> None:
    # Each run takes 0.25 s of a 0.45 s timeout at a 0.3 s interval: an earlier run's
    # deadline falls inside the next run and must not cut it short.
    seen: list[Observation] = []
    async with peers(0.25) as (peer,):
        sched = Scheduler(seen.append, jitter=0.0)
        sched.set_targets([(Target("p", peer.host), (check(peer, interval=0.3, timeout=0.45),))])
        async with running(sched):
            await asyncio.sleep(2.5)
    assert len(seen) >= 5
    assert all(o.status is Status.OK for o in seen), [o.error for o in seen]


async def test_interval_shorter_than_a_dispatch_batch_does_not_stall_the_loop() -> None:
    # Checks due within a few milliseconds start in one batch; a check whose interval is
    # shorter than that must wait for the next batch, not keep the batch going forever.
    seen: list[Observation] = []
    ticks = 0
    async with peers(0.0) as (peer,):
        sched = Scheduler(seen.append, jitter=0.0)
        sched.set_targets([(Target("p", peer.host), (check(peer, interval=0.0005),))])
        async with running(sched):
            for _ in range(10):
                await asyncio.sleep(0.02)
                ticks += 1
    assert ticks == 10 and seen and all(o.status is Status.OK for o in seen)
    assert sched.stats.overruns > 0


async def test_check_running_during_a_reload_keeps_running_after_it() -> None:
    # A reload (SIGHUP) while a run is in flight: that check must go on running on its
    # cadence, not count every later run as an overrun of the one that ended.
    seen: list[Observation] = []
    async with peers(0.15) as (peer,):
        sched = Scheduler(seen.append, jitter=0.0)
        targets = [(Target("p", peer.host), (check(peer, interval=0.3),))]
        sched.set_targets(targets)
        async with running(sched):
            await asyncio.sleep(0.05)
            assert sched.stats.in_flight == 1
            sched.set_targets(targets)
            await asyncio.sleep(1.5)
    assert len(seen) >= 4 and all(o.status is Status.OK for o in seen)
    assert sched.stats.overruns == 0


async def test_per_host_cap_limits_concurrent_checks_of_one_host() -> None:
    seen: list[Observation] = []
    async with peers(0.3) as (peer,):
        sched = Scheduler(seen.append, per_host_concurrency=1, jitter=0.0)
        checks = tuple(check(peer, name=f"c{i}", interval=0.5) for i in range(4))
        sched.set_targets([(Target("dev", peer.host), checks)])
        async with running(sched):
            await asyncio.sleep(1.0)
        assert peer.peak == 1
    assert len(seen) >= 3


async def test_global_cap_limits_checks_in_flight() -> None:
    seen: list[Observation] = []
    async with peers(*[0.2] * 6) as started:
        sched = Scheduler(seen.append, max_concurrency=2, jitter=0.0)
        sched.set_targets([(Target(f"d{i}", p.host), (check(p, interval=5),))
                           for i, p in enumerate(started)])
        peak = 0
        async with running(sched):
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and len(seen) < 6:
                peak = max(peak, sched.stats.in_flight)
                await asyncio.sleep(0.01)
    assert len(seen) == 6
    assert peak == 2


async def test_unreachable_device_backs_off_other_checks_but_sees_recovery_quickly() -> None:
    seen: list[Observation] = []
    async with peers(0.0) as (peer,):
        target = Target("cam", peer.host)
        primary = check(peer, name="primary", interval=0.2)
        secondary = check(peer, name="secondary", interval=0.2)
        sched = Scheduler(seen.append, jitter=0.0, backoff_max=5.0)
        assert peer.server is not None
        port = peer.port
        peer.server.close()
        await peer.server.wait_closed()
        sched.set_targets([(target, (primary, secondary))])
        async with running(sched):
            await asyncio.sleep(2.0)
            down = Counter(o.check for o in seen)
            # The first check kept its cadence; the other one backed off.
            assert down["primary"] >= 8
            assert down["secondary"] <= 4
            peer.server = await asyncio.start_server(peer._handle, peer.host, port)
            seen.clear()
            back_at = time.monotonic()
            while time.monotonic() - back_at < 2 and not any(
                    o.check == "secondary" and o.status is Status.OK for o in seen):
                await asyncio.sleep(0.02)
            recovered_after = time.monotonic() - back_at
    # The secondary check comes back within about one normal interval, not the backoff.
    assert recovered_after < 0.2 * 2 + 0.3


async def test_reload_keeps_phase_and_drops_removed_checks() -> None:
    seen: list[Observation] = []
    async with peers(0.0, 0.0) as (a, b):
        sched = Scheduler(seen.append, jitter=0.0)
        sched.set_targets([(Target("a", a.host), (check(a, interval=0.2),)),
                           (Target("b", b.host), (check(b, interval=0.2),))])
        async with running(sched):
            await asyncio.sleep(0.5)
            sched.set_targets([(Target("a", a.host), (check(a, interval=0.2),))])
            await asyncio.sleep(0.1)
            seen.clear()
            await asyncio.sleep(0.6)
    assert {o.device for o in seen} == {"a"}
    assert sched.job_count == 1


async def test_limiter_hands_slots_on_in_order_and_survives_cancelled_waiters() -> None:
    from elvwatch.daemon.scheduler import Limiter

    limiter = Limiter(2)
    order: list[str] = []
    gate = asyncio.Event()

    async def hold(name: str) -> None:
        await limiter.acquire()
        try:
            order.append(name)
            await gate.wait()
        finally:
            limiter.release()

    first = [asyncio.create_task(hold(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(hold(n)) for n in ("c", "d", "e")]
    await asyncio.sleep(0)
    assert order == ["a", "b"]          # the cap holds
    waiting[0].cancel()                 # a waiter that gives up keeps no slot
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*first, *waiting[1:])
    assert order == ["a", "b", "d", "e"]
    # Every slot came back: two can enter at once again.
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()  # and no more than two
