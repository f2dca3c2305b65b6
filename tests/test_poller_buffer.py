"""The poller's buffer on disk: in order, numbered for good, bounded with the oldest
dropped, said and counted."""

from __future__ import annotations

import time
from pathlib import Path

from elvwatch.daemon.poller_buffer import PollerBuffer, describe
from elvwatch.exporters.exposition import render
from elvwatch.exporters.multisite_metrics import ForwarderStats, forwarder_families

T0 = 1_780_000_000.0


def items(start: int, count: int) -> list[tuple[float, dict[str, object]]]:
    return [(T0 + i, {"device": "cam-01", "check": "icmp", "status": "ok", "time": T0 + i})
            for i in range(start, start + count)]


async def test_observations_come_out_in_order_and_leave_when_taken(tmp_path: Path) -> None:
    buffer = await PollerBuffer.open(tmp_path / "b.db", 1000)
    try:
        assert await buffer.append(items(0, 5)) is None
        rows = await buffer.head(3)
        assert [r[1]["time"] for r in rows] == [T0, T0 + 1, T0 + 2]
        seqs = [seq for seq, _ in rows]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        await buffer.remove_through(seqs[-1])
        assert [r[1]["time"] for r in await buffer.head(10)] == [T0 + 3, T0 + 4]
    finally:
        await buffer.close()


async def test_numbers_keep_rising_across_a_reopen_and_a_lost_file(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = await PollerBuffer.open(path, 1000)
    await buffer.append(items(0, 3))
    last = (await buffer.head(10))[-1][0]
    await buffer.remove_through(last)
    await buffer.close()
    # The numbers of taken observations are not handed out again after a restart ...
    buffer = await PollerBuffer.open(path, 1000)
    await buffer.append(items(3, 1))
    assert (await buffer.head(1))[0][0] > last
    await buffer.close()
    # ... nor by a new file (the old one lost with its disk): it starts at the clock.
    path.unlink()
    buffer = await PollerBuffer.open(path, 1000)
    await buffer.append(items(4, 1))
    assert (await buffer.head(1))[0][0] > last
    assert (await buffer.head(1))[0][0] >= int((time.time() - 60) * 1_000_000)
    await buffer.close()


async def test_a_full_buffer_drops_the_oldest_and_says_so(tmp_path: Path) -> None:
    buffer = await PollerBuffer.open(tmp_path / "b.db", 100)
    try:
        assert await buffer.append(items(0, 90)) is None
        dropped = await buffer.append(items(90, 30))
        assert dropped is not None and dropped.count == 20
        assert (dropped.first_time, dropped.last_time) == (T0, T0 + 19)
        assert await buffer.count() == 100 and buffer.dropped == 20
        assert (await buffer.head(1))[0][1]["time"] == T0 + 20  # the newest are kept
        message = describe(dropped, 100)
        assert "dropped the oldest 20" in message and "2026-05-28T20:26:40+00:00" in message
        body = render(forwarder_families(ForwarderStats(100, buffer.dropped, 0, 3, None)))
        assert "elvwatch_poller_buffer_dropped_total 20" in body.decode()
        assert "elvwatch_poller_buffer_observations 100" in body.decode()
    finally:
        await buffer.close()
