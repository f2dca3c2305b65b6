"""The whole pipeline in one daemon: a lab device fails → a fault → one ticket with the
contract's deadlines → a signed webhook → the device returns → resolved and verified by
the system, closed by the site representative's sign-off; the ticket figures in
/metrics follow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.tickets.field_work import Dispatch, FieldWork
from elvwatch.tickets.records import SignOff
from elvwatch.tickets.ticket_store import Ticket
from elvwatch.web.server import HttpListener
from tests.helpers import until
from tests.notify_peers import WEBHOOK_SECRET, http_receiver
from tests.test_daemon import PORT, aget, first_address, free_port


def pipeline_config(path: Path, fleet: LabFleet, listen: str, hook: str) -> Path:
    switch, *cameras = fleet.devices
    devices: list[dict[str, Any]] = [
        {"id": switch.id, "site": "garden", "kind": "switch", "host": switch.host,
         "checks": [tcp_check(PORT)]}]
    devices += [{"id": cam.id, "site": "garden", "kind": "camera", "host": cam.host,
                 "depends_on": [switch.id], "checks": [tcp_check(PORT)]} for cam in cameras]
    path.write_text(yaml.safe_dump({
        "http": {"listen": listen},
        "interval": 0.2, "timeout": 0.2,
        "scheduler": {"down_after": 2, "jitter": 0.0},
        "credentials": {"hook": {"password_env": "ELVWATCH_TEST_HOOK_SECRET"}},
        "sites": [{"id": "garden", "name": "阳光花园", "language": "zh-CN",
                   "contract": {"start": "2026-01-01", "response_hours": 12,
                                "resolve_hours": {"general": 12}}}],
        "notify": {"receivers": {"noc": {"type": "webhook", "credentials": "hook",
                                         "options": {"url": hook}}},
                   "routes": [{"receivers": ["noc"]}]},
        "devices": devices}, allow_unicode=True), encoding="utf-8")
    return path


async def test_device_failure_opens_one_ticket_notifies_and_closes_on_sign_off_after_recovery(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with http_receiver() as receiver, LabFleet(4, first_address(), [PORT]) as fleet:
        config = load_config(pipeline_config(tmp_path / "c.yaml", fleet,
                                             f"127.0.0.1:{port}", f"{receiver.url}/hook"))
        app = App(config, HttpListener())
        await app.start()
        assert app.tickets is not None
        try:
            camera = fleet.devices[2].id
            await until(lambda: all(s.state.value == "up"
                                       for s in app.tracker.devices.values()), what="all up")
            await fleet.set_fault(camera, Fault.DOWN)

            async def live() -> list[Any]:
                assert app.tickets is not None
                return await app.tickets.list_tickets(state="live", kind="fault")

            tickets = await until(live, "the fault's ticket", every=0.1)
            assert len(tickets) == 1
            ticket = tickets[0]
            assert ticket.device == camera and ticket.rule == "device_unreachable"
            assert ticket.severity == "general"
            assert ticket.response_due is not None and ticket.resolve_due is not None

            await until(lambda: any(r.path == "/hook" for r in receiver.received),
                        what="webhook")
            sent = receiver.accepted("/hook")
            assert sent and sent[0].verified  # the receiver checked the HMAC signature
            (event,) = sent[0].json()["events"]
            assert event["kind"] == "opened" and event["device"] == camera
            assert WEBHOOK_SECRET not in sent[0].body.decode()

            # Still exactly one ticket after more failing polls.
            await asyncio.sleep(1.0)
            assert len(await live()) == 1

            await fleet.set_fault(camera, Fault.NONE)
            async def verified() -> Any:
                assert app.tickets is not None
                found = (await app.tickets.get(ticket.number)).ticket
                return found if found.state == "verified" else None

            # The system confirms the recovery; closing is the site representative's.
            final = await until(verified, "the recovery verified", 20.0, every=0.1)
            assert final.recovered_without_intervention and final.responded_at is None
            await asyncio.sleep(1.0)
            assert (await app.tickets.get(ticket.number)).ticket.state == "verified"
            await app.tickets.sign_off(ticket.number, "王工", SignOff("张经理", channel="paper"))
            assert (await app.tickets.get(ticket.number)).ticket.state == "closed"

            samples: list[tuple[str, dict[str, str], float]] = []
            for _ in range(100):
                code, text = await aget(f"{base}/metrics")
                assert code == 200
                samples = [(s.name, s.labels, s.value)
                           for f in text_string_to_metric_families(text) for s in f.samples]
                if sum(v for n, _, v in samples if n == "elvwatch_tickets_verified_total"):
                    break
                await asyncio.sleep(0.2)
            opened = [v for n, lab, v in samples if n == "elvwatch_tickets_opened_total"
                      and lab["site"] == "garden"]
            verified = [v for n, lab, v in samples
                        if n == "elvwatch_tickets_verified_total"]
            # One fault ticket, plus the preventive work orders the contract is due.
            preventive = await app.tickets.list_tickets(kind="preventive")
            assert sum(opened) == 1 + len(preventive) and sum(verified) == 1
            def kinds() -> list[str]:
                return [e["kind"] for r in receiver.accepted("/hook")
                        for e in json.loads(r.body)["events"]]

            await until(lambda: "signed_off" in kinds(), what="sign-off notified")
            assert kinds().count("opened") == 1 and "verified" in kinds()
        finally:
            await app.stop()


@asynccontextmanager
async def preventive_daemon(tmp_path: Path, monkeypatch: Any
                            ) -> AsyncIterator[tuple[App, LabFleet, Ticket]]:
    """A daemon watching a switch and two cameras, and the site's CCTV work order the
    contract's quarter opened at start."""
    monkeypatch.setenv("ELVWATCH_TEST_HOOK_SECRET", WEBHOOK_SECRET)
    async with http_receiver() as receiver, LabFleet(3, first_address(), [PORT]) as fleet:
        config = load_config(pipeline_config(tmp_path / "c.yaml", fleet,
                                             f"127.0.0.1:{free_port()}",
                                             f"{receiver.url}/hook"))
        app = App(config)
        await app.start()
        assert app.tickets is not None
        tickets = app.tickets
        try:
            orders = await until(lambda: tickets.list_tickets(kind="preventive", state="live"),
                                 "the quarterly work order", every=0.1)
            (order,) = [o for o in orders if o.system == "cctv"]
            yield app, fleet, order
        finally:
            await app.stop()


async def test_preventive_visit_mutes_its_system_until_the_work_order_is_completed(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Acknowledged with no arrival recorded (an engineer phoning from the site), the
    work order mutes its system until it is completed."""
    async with preventive_daemon(tmp_path, monkeypatch) as (app, fleet, order):
        tickets = app.tickets
        assert tickets is not None
        await tickets.acknowledge(order.number, "王工", "on site")
        await until(lambda: any(s.id == f"visit-{order.number}" for s in app.silencer.list()),
                    what="visit silence")

        camera = fleet.devices[1].id
        await fleet.set_fault(camera, Fault.DOWN)
        await until(lambda: app.tracker.devices[camera].state.value == "down")
        await asyncio.sleep(1.0)
        assert await tickets.list_tickets(kind="fault", state="live") == []
        muted = [f for f in app.engine.firing() if f.device == camera]
        assert muted and muted[0].suppressed_by == f"visit-{order.number}"

        checklist = {item: (True, "") for item in order.checklist}
        await tickets.complete_preventive(order.number, "王工", "王工", checklist)
        # The visit is over: the camera still failing now gets its ticket.
        faults = await until(lambda: tickets.list_tickets(kind="fault", state="live"),
                             "the camera's ticket after the visit", every=0.1)
        assert [t.device for t in faults] == [camera]


async def test_preventive_visit_mutes_from_the_recorded_arrival_to_the_departure(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Dispatched for tomorrow, the engineer's system is not muted today; their recorded
    arrival mutes it, their departure ends it (the work order still open)."""
    async with preventive_daemon(tmp_path, monkeypatch) as (app, fleet, order):
        tickets = app.tickets
        assert tickets is not None
        field = FieldWork(tickets)
        camera = fleet.devices[1].id
        labels = {"site": "garden", "system": "cctv", "device": camera}
        silence = f"visit-{order.number}"

        await field.dispatch(order.number, "王工", Dispatch("定期保养", "王工",
                                                            time.time() + 86400))
        await until(lambda: any(s.id == silence for s in app.silencer.list()),
                    what="the visit's silence, from the ETA")
        assert app.silencer.mutes(labels) is None   # the engineer is not there yet

        await field.arrive(order.number, "王工", "王工")
        await until(lambda: app.silencer.mutes(labels) == silence,
                    what="the silence from the arrival")
        await fleet.set_fault(camera, Fault.DOWN)
        await until(lambda: app.tracker.devices[camera].state.value == "down")
        await asyncio.sleep(1.0)
        assert await tickets.list_tickets(kind="fault", state="live") == []

        await field.depart(order.number, "王工", "王工", "明天继续")
        faults = await until(lambda: tickets.list_tickets(kind="fault", state="live"),
                             "the camera's ticket after the departure", every=0.1)
        assert [t.device for t in faults] == [camera]
        detail = await tickets.get(order.number)
        assert detail.ticket.state == "acknowledged"      # the order is not done
        assert [e.kind for e in detail.events][-2:] == ["arrived", "departed"]
