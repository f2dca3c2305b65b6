"""The Dispatcher end to end against a real webhook receiver on loopback: retries,
rate limiting that summarises a storm, and a crash in the middle of a burst with the
SQLite log (no notification lost, none doubled)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import pytest
from alembic.script import ScriptDirectory

from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.exporters.notify.dispatcher import Dispatcher
from elvwatch.exporters.notify.log import (
    MemoryNotificationLog,
    NotificationLog,
    Pending,
    SqlNotificationLog,
)
from elvwatch.exporters.notify.receivers import build_notifiers
from elvwatch.probes.base import Credential, Secret
from elvwatch.tickets.events import TicketEventKind
from elvwatch.tickets.store import Store, alembic_config
from tests.helpers import until
from tests.notify_peers import WEBHOOK_SECRET, Receiver, event, http_receiver

CREDENTIALS = {"hook": Credential(name="hook", secrets=MappingProxyType(
    {"hmac": Secret(WEBHOOK_SECRET)}))}


def config(url: str, *, per_minute: float = 6000, burst: int = 1000, attempts: int = 4,
           severities: Sequence[str] = ()) -> NotifyConfig:
    return NotifyConfig.model_validate({
        "receivers": {"noc": {"type": "webhook", "credentials": "hook",
                              "options": {"url": f"{url}/hook", "timeout": 2},
                              "rate": {"per_minute": per_minute, "burst": burst}}},
        "routes": [{"receivers": ["noc"], "severities": list(severities)}],
        "retry": {"initial_delay": 0.01, "max_delay": 0.05, "attempts": attempts},
    })


def dispatcher(cfg: NotifyConfig, log: NotificationLog) -> Dispatcher:
    return Dispatcher(cfg, build_notifiers(cfg, CREDENTIALS), log)


def delivered(peer: Receiver) -> Counter[str]:
    """How often each event id reached the receiver, over every accepted message."""
    return Counter(e["id"] for got in peer.accepted("/hook") for e in got.json()["events"])


async def test_5xx_is_retried_until_delivered_once_and_logged() -> None:
    log = MemoryNotificationLog()
    async with http_receiver() as peer:
        peer.script["/hook"] = [(503, {}), (500, {})]
        d = dispatcher(config(peer.url), log)
        await d.start()
        try:
            assert await d.submit([event(1)]) == 1
            await until(lambda: peer.accepted("/hook") and d.stats["noc"].messages_sent)
        finally:
            await d.stop()
    assert len(peer.received) == 3 and delivered(peer) == {"ev-00001": 1}
    [entry] = await log.entries()
    assert (entry.state, entry.attempts) == ("sent", 3)
    assert d.stats["noc"].retries == 2


async def test_4xx_is_not_retried_and_logged_as_failed() -> None:
    log = MemoryNotificationLog()
    async with http_receiver() as peer:
        peer.script["/hook"] = [(400, {"error": "bad"})]
        d = dispatcher(config(peer.url), log)
        await d.start()
        try:
            await d.submit([event(1)])
            await until(lambda: d.stats["noc"].notifications_failed)
            await asyncio.sleep(0.1)  # a retry, if one were made, would show now
        finally:
            await d.stop()
    assert len(peer.received) == 1
    [entry] = await log.entries()
    assert entry.state == "failed" and entry.attempts == 1 and "HTTP 400" in (entry.error or "")


async def test_recoverable_failures_give_up_after_the_configured_attempts() -> None:
    log = MemoryNotificationLog()
    async with http_receiver() as peer:
        peer.script["/hook"] = [(502, {})] * 10
        d = dispatcher(config(peer.url, attempts=3), log)
        await d.start()
        try:
            await d.submit([event(1)])
            await until(lambda: d.stats["noc"].notifications_failed)
        finally:
            await d.stop()
    assert len(peer.received) == 3
    assert [(e.state, e.attempts) for e in await log.entries()] == [("failed", 3)]


async def test_routes_pick_events_by_kind_and_severity() -> None:
    log = MemoryNotificationLog()
    async with http_receiver() as peer:
        d = dispatcher(config(peer.url, severities=["emergency"]), log)
        await d.start()
        try:
            owed = await d.submit([
                event(1, severity="emergency"), event(2, severity="general"),
                event(3, severity="emergency", kind=TicketEventKind.ACKNOWLEDGED)])
            await until(lambda: d.stats["noc"].messages_sent == 1)
        finally:
            await d.stop()
    assert owed == 1 and delivered(peer) == {"ev-00001": 1}


async def test_a_storm_is_summarised_not_flooded() -> None:
    log = MemoryNotificationLog()
    per_minute, burst, storm = 120.0, 3, 60
    async with http_receiver() as peer:
        d = dispatcher(config(peer.url, per_minute=per_minute, burst=burst), log)
        await d.start()
        started = time.monotonic()
        try:
            for n in range(storm):  # events arriving one by one, as a fault storm does
                await d.submit([event(n)])
                await asyncio.sleep(0.002)
            await until(lambda: sum(delivered(peer).values()) == storm)
            elapsed = time.monotonic() - started
        finally:
            await d.stop()
    messages = peer.accepted("/hook")
    # Never more than the bucket allows, and every event exactly once.
    assert len(messages) <= burst + elapsed * per_minute / 60 + 1
    assert len(messages) < storm / 5
    assert delivered(peer) == Counter({f"ev-{n:05d}": 1 for n in range(storm)})
    assert any(m.json()["summary"] for m in messages)
    assert d.stats["noc"].summaries_sent >= 1


async def test_the_same_event_submitted_twice_is_sent_once() -> None:
    log = MemoryNotificationLog()
    async with http_receiver() as peer:
        d = dispatcher(config(peer.url), log)
        await d.start()
        try:
            assert await d.submit([event(1), event(1)]) == 1
            assert await d.submit([event(1)]) == 0
            await until(lambda: d.stats["noc"].messages_sent == 1)
            await asyncio.sleep(0.05)
        finally:
            await d.stop()
    assert delivered(peer) == {"ev-00001": 1}


async def test_crash_mid_burst_then_restart_loses_and_doubles_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'elvwatch.db'}"
    burst = [event(n) for n in range(40)]
    async with http_receiver() as peer:
        peer.delay = 0.02  # each send takes a while: the crash lands with one in flight
        cfg = config(peer.url, per_minute=600, burst=1000)
        log = await SqlNotificationLog.open(url)
        first = dispatcher(cfg, log)
        await first.start()
        for item in burst:
            await first.submit([item])
        await until(lambda: len(peer.received) >= 8)
        await first.stop()  # cancels the workers mid-burst
        await log.close()
        before = sum(delivered(peer).values())
        assert 0 < before < len(burst)

        log = await SqlNotificationLog.open(url)
        second = dispatcher(cfg, log)
        try:
            await second.start()
            # The ticket stage may hand the same events over again after its own restart.
            assert await second.submit(burst) == 0
            await until(lambda: sum(delivered(peer).values()) >= len(burst))
            await asyncio.sleep(0.1)  # a doubled send, if any, would arrive now
            entries = await log.entries()
        finally:
            await second.stop()
            await log.close()
    assert delivered(peer) == Counter({e.id: 1 for e in burst})
    assert {e.state for e in entries} == {"sent"} and len(entries) == len(burst)


async def test_sql_log_keeps_pending_and_sent_across_reopen(store_url: str) -> None:
    log = await SqlNotificationLog.open(store_url)
    try:
        items = [Pending(event(n, at=1_780_000_000.0 + 10 - n), "noc") for n in range(3)]
        assert len(await log.enqueue(items + items[:1], now=1.0)) == 3
        assert await log.enqueue(items, now=2.0) == []
        await log.mark_sent([items[0].key], "m-1", 1, now=3.0)
        await log.mark_failed([items[1].key], "HTTP 400", 1, now=3.0)
    finally:
        await log.close()
    log = await SqlNotificationLog.open(store_url)
    try:
        [left] = await log.pending()
        assert left.event == items[2].event  # read back whole, as submitted
        states = {e.event_id: (e.state, e.message_id, e.error) for e in await log.entries()}
    finally:
        await log.close()
    assert states == {"ev-00000": ("sent", "m-1", None), "ev-00001": ("failed", None, "HTTP 400"),
                      "ev-00002": ("pending", None, None)}


async def test_notify_log_migration_is_on_the_single_head_with_the_store(store_url: str) -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    store = await Store.open(store_url)  # the store's own migrations bring notify_log along
    await store.close()
    log = await SqlNotificationLog.open(store_url)
    try:
        assert await log.pending() == []
    finally:
        await log.close()


@pytest.mark.parametrize("kind", list(TicketEventKind))
def test_event_round_trips_through_the_log_json(kind: TicketEventKind) -> None:
    from elvwatch.exporters.notify.messages import event_from_json, event_json
    original = event(4, kind=kind, note="备注")
    assert event_from_json(event_json(original)) == original
