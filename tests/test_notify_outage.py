"""Notifications do not wait for the database: a PostgreSQL of the test's own is stopped
for a minute while a camera fails; the fault reaches the webhook during the outage
(from the local spool), and once the store is back the ticket is opened without a
second "opened" message, the store's notification log learns what was sent, and the
next event (the camera's recovery) goes out as usual."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.exporters.notify.log import COVERED, SENT
from elvwatch.lab.devices import Fault, LabFleet
from elvwatch.tickets.notify_log import notify_log
from elvwatch.tickets.store import StoreError
from tests.conftest import PostgresServer
from tests.helpers import until
from tests.notify_peers import WEBHOOK_SECRET, Receiver, http_receiver
from tests.test_daemon import PORT, first_address, free_port
from tests.test_pipeline import pipeline_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE_SECONDS = 60.0


def opened_for(receiver: Receiver, device: str) -> list[dict[str, Any]]:
    return [e for r in receiver.accepted("/hook") for e in json.loads(r.body)["events"]
            if e["device"] == device and e["kind"] == "opened"]


async def store_log(url: str) -> dict[str, str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(notify_log.c.event_id, notify_log.c.state))
            return {r.event_id: r.state for r in rows}
    finally:
        await engine.dispose()


async def test_notifications_go_out_while_postgresql_is_stopped_for_a_minute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    with tempfile.TemporaryDirectory(prefix="elvwatch-pg-outage-") as pg_root:
        server = PostgresServer(Path(pg_root))
        await asyncio.to_thread(server.start)
        try:
            url = await asyncio.to_thread(server.createdb, "elvwatch")
            await _outage(tmp_path, server, url)
        finally:
            await asyncio.to_thread(server.stop, "immediate")


async def _outage(tmp_path: Path, server: PostgresServer, url: str) -> None:
    async with http_receiver() as receiver, LabFleet(3, first_address(), [PORT]) as fleet:
        path = pipeline_config(tmp_path / "c.yaml", fleet, f"127.0.0.1:{free_port()}",
                               f"{receiver.url}/hook")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["storage"] = {"url": url}
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = App(load_config(path))
        await app.start()
        assert app.tickets is not None
        camera = fleet.devices[2].id
        try:
            await until(lambda: all(s.state.value == "up"
                                       for s in app.tracker.devices.values()),
                        what="all up")
            await asyncio.to_thread(server.stop)
            stopped = time.monotonic()
            await fleet.set_fault(camera, Fault.DOWN)

            await until(lambda: opened_for(receiver, camera), timeout=OUTAGE_SECONDS - 5,
                        what="the fault notified while the store is down")
            told_after = time.monotonic() - stopped
            assert told_after < OUTAGE_SECONDS
            (told,) = opened_for(receiver, camera)
            assert told["ticket"] == "" and "store is unavailable" in told["note"]
            assert told["response_due"] is not None  # the contract's, from the fault
            assert app.store_errors > 0
            spool = app.ticket_stage.notify_log
            entries = await spool.entries() if spool else []
            assert [e.state for e in entries if e.event_id == told["id"]] == [SENT]

            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
            await asyncio.to_thread(server.start)

            tickets: list[Any] = []
            for _ in range(900):  # the writer's back-off reaches 30 s
                try:
                    tickets = await app.tickets.list_tickets(state="live", kind="fault")
                except StoreError:  # the writer may not have reconnected yet
                    tickets = []
                if tickets:
                    break
                await asyncio.sleep(0.1)
            (ticket,) = tickets
            assert ticket.device == camera

            # The store's log learns of both: the notification sent during the
            # outage, and the ticket's own "opened", covered by it.
            async def synced() -> dict[str, str]:
                return await store_log(url)

            rows: dict[str, str] = {}
            for _ in range(300):
                rows = await synced()
                if rows.get(told["id"]) == SENT and f"{ticket.number}#1" in rows:
                    break
                await asyncio.sleep(0.1)
            assert rows[told["id"]] == SENT
            assert rows[f"{ticket.number}#1"] == COVERED

            await fleet.set_fault(camera, Fault.NONE)
            await until(lambda: any(
                e["device"] == camera and e["kind"] == "resolved"
                for r in receiver.accepted("/hook") for e in json.loads(r.body)["events"]),
                timeout=60, what="the recovery notified with the ticket number")
            assert len(opened_for(receiver, camera)) == 1
            resolved = [e for r in receiver.accepted("/hook")
                        for e in json.loads(r.body)["events"] if e["kind"] == "resolved"]
            assert resolved[0]["ticket"] == ticket.number
            print(f"fault notified {told_after:.1f}s into a {OUTAGE_SECONDS:g}s outage")
        finally:
            await app.stop()
