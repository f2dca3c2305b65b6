"""The notifications' local spool and its copy in the store, against real databases
(the store on SQLite and on PostgreSQL; the spool is always a local SQLite file), and
the notifier health the dispatcher exports, against a real webhook receiver."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from elvwatch.exporters.exposition import render
from elvwatch.exporters.notify.dispatcher import Dispatcher
from elvwatch.exporters.notify.log import (
    COVERED,
    PENDING,
    SENT,
    MemoryNotificationLog,
    Pending,
    SqlNotificationLog,
)
from elvwatch.exporters.notify.receivers import build_notifiers
from elvwatch.exporters.notify.spool import SpooledLog
from elvwatch.exporters.notify_metrics import notify_families
from elvwatch.tickets.events import fault_episode
from elvwatch.tickets.notify_log import notify_log
from elvwatch.tickets.store import Store
from tests.notify_peers import event, http_receiver
from tests.test_notify_dispatcher import CREDENTIALS, config, delivered, until

NOW = 1_780_000_100.0


async def store_rows(url: str) -> dict[tuple[str, str], str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(notify_log.c.event_id, notify_log.c.receiver,
                                             notify_log.c.state))
            return {(r.event_id, r.receiver): r.state for r in rows}
    finally:
        await engine.dispose()


async def test_spool_sends_once_covers_the_ticket_of_a_fault_told_early_and_syncs(
        tmp_path: Path, store_url: str) -> None:
    await (await Store.open(store_url)).close()  # the store's schema, as at daemon start
    spooled = await SpooledLog.open(tmp_path / "spool.db", store_url)
    try:
        episode = fault_episode("fp-cam-1", NOW)
        early = dataclasses.replace(event(1), id=f"unrecorded:{episode}", ticket="",
                                    episode=episode)
        opened = dataclasses.replace(event(2), episode=episode)
        assert [p.key for p in await spooled.enqueue([Pending(early, "noc")], NOW)] == \
            [(early.id, "noc")]
        await spooled.mark_sent([(early.id, "noc")], "m-1", 1, NOW)
        # The ticket's own "opened" for the same episode is covered, not owed again.
        assert await spooled.enqueue([Pending(opened, "noc"), Pending(opened, "mail")],
                                     NOW) == [Pending(opened, "mail")]
        assert await spooled.enqueue([Pending(early, "noc")], NOW) == []  # known
        states = {(e.event_id, e.receiver): e.state for e in await spooled.entries()}
        assert states == {(early.id, "noc"): SENT, (opened.id, "noc"): COVERED,
                          (opened.id, "mail"): PENDING}

        assert await store_rows(store_url) == {}
        assert await spooled.sync() == 3 and spooled.unsynced == 0
        assert await store_rows(store_url) == states
        await spooled.mark_sent([(opened.id, "mail")], "m-2", 1, NOW)
        assert await spooled.count_unsynced() == 1
        assert await spooled.sync() == 1
        assert (await store_rows(store_url))[(opened.id, "mail")] == SENT
    finally:
        await spooled.close()


async def test_a_new_spool_takes_over_what_the_store_owes_and_skips_what_it_sent(
        tmp_path: Path, store_url: str) -> None:
    # A daemon from before the spool: its log is the store's notify_log.
    old = await SqlNotificationLog.open(store_url)
    await old.enqueue([Pending(event(1), "noc"), Pending(event(2), "noc")], NOW)
    await old.mark_sent([(event(1).id, "noc")], "m-1", 1, NOW)
    await old.close()
    spooled = await SpooledLog.open(tmp_path / "spool.db", store_url)
    try:
        assert await spooled.seed(NOW) == 1
        assert [p.key for p in await spooled.pending()] == [(event(2).id, "noc")]
        # Replayed after the restart: the store says it was sent, so it is not again.
        assert await spooled.enqueue([Pending(event(1), "noc")], NOW) == []
        (entry,) = [e for e in await spooled.entries() if e.event_id == event(1).id]
        assert (entry.state, entry.message_id) == (SENT, "m-1")
    finally:
        await spooled.close()


async def test_a_store_that_does_not_answer_holds_no_notification(tmp_path: Path) -> None:
    unreachable = "postgresql+asyncpg://elvwatch:pw@127.0.0.1:9/elvwatch"
    spooled = await SpooledLog.open(tmp_path / "spool.db", unreachable)
    try:
        began = time.monotonic()
        assert [p.key for p in await spooled.enqueue([Pending(event(1), "noc")], NOW)] == \
            [(event(1).id, "noc")]
        assert time.monotonic() - began < 5 and not spooled.store_ok
        assert await spooled.seed(NOW) == 0
    finally:
        await spooled.close()


def samples(text: str) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("receiver", "")): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


async def test_receiver_health_shows_sent_retrying_failed_and_last_success() -> None:
    async with http_receiver() as peer:
        cfg = config(peer.url, attempts=3)
        cfg = cfg.model_copy(update={"retry": cfg.retry.model_copy(
            update={"initial_delay": 1.0, "max_delay": 1.0})})
        d = Dispatcher(cfg, build_notifiers(cfg, CREDENTIALS), MemoryNotificationLog())
        await d.start()

        def scrape() -> dict[tuple[str, str], Any]:
            return samples(render(notify_families(d.stats, 0)).decode())

        try:
            first = scrape()
            assert first[("elvwatch_notify_notifications_sent_total", "noc")] == 0
            assert ("elvwatch_notify_last_success_timestamp_seconds", "noc") not in first
            peer.script["/hook"] = [(503, {})]
            before = time.time()
            await d.submit([event(1)])
            await until(lambda: d.stats["noc"].retrying == 1)
            assert scrape()[("elvwatch_notify_notifications_retrying", "noc")] == 1
            await until(lambda: d.stats["noc"].notifications_sent == 1)
            peer.script["/hook"] = [(400, {"error": "bad"})]
            await d.submit([event(2)])
            await until(lambda: d.stats["noc"].notifications_failed == 1)
        finally:
            await d.stop()
    got = scrape()
    assert got[("elvwatch_notify_notifications_sent_total", "noc")] == 1
    assert got[("elvwatch_notify_notifications_failed_total", "noc")] == 1
    assert got[("elvwatch_notify_retries_total", "noc")] == 1
    assert got[("elvwatch_notify_notifications_retrying", "noc")] == 0
    assert got[("elvwatch_notify_spool_unsynced", "")] == 0
    assert before <= got[("elvwatch_notify_last_success_timestamp_seconds", "noc")] <= time.time()
    assert delivered(peer) == {"ev-00001": 1}
