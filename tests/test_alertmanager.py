"""Alertmanager's webhook into a running daemon: alerts open, keep and resolve tickets of
the devices their labels name; everything else is refused with a clear message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.lab.devices import LabFleet, tcp_check
from elvwatch.rules.alertmanager import (
    AlertmanagerConfig,
    DeviceIndex,
    Payload,
    host_of,
    to_transitions,
)
from elvwatch.rules.faults import FaultState
from elvwatch.web.server import HttpListener
from tests.helpers import until
from tests.test_daemon import PORT, first_address, free_port

TOKEN = "am-token-0123456789"
STARTS = "2026-11-26T08:00:00.123456789Z"
ZERO = "0001-01-01T00:00:00Z"


def alert(status: str, instance: str, name: str = "NvrDiskFailing",
          **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "instance": instance, "job": "node", **labels},
        "annotations": {"summary": "NVR disk failing", "summary_zh": "录像机硬盘故障",
                        "description": "smart status bad on sda"},
        "startsAt": STARTS,
        "endsAt": ZERO if status == "firing" else "2026-11-26T09:00:00Z",
        "generatorURL": "http://prometheus.local/graph", "fingerprint": "c6eadffa33fcdf37"}


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    # The documented version-4 shape, with the fields we ignore too.
    return {"version": "4", "groupKey": '{}:{alertname="NvrDiskFailing"}',
            "truncatedAlerts": 0, "status": status, "receiver": "elvwatch",
            "groupLabels": {"alertname": "NvrDiskFailing"}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager.local:9093",
            "alerts": list(alerts)}


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


def write_config(path: Path, hosts: list[str], listen: str = "127.0.0.1:0",
                 extra: dict[str, Any] | None = None) -> Path:
    token = path.parent / "token"
    token.write_text(TOKEN + "\n")
    path.write_text(yaml.safe_dump({
        "http": {"listen": listen, "token_file": str(token)},
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'e.db'}"},
        "interval": 0.5, "timeout": 0.4,
        "sites": [{"id": "garden", "name": "阳光花园"}, {"id": "lake", "name": "湖畔"}],
        # Verification would follow resolution within polls; keep tickets resolved here.
        "tickets": {"verify_after_polls": 1000},
        "devices": [
            {"id": "nvr-01", "site": "garden", "kind": "nvr", "host": hosts[0],
             "checks": [tcp_check(PORT)]},
            {"id": "cam-01", "site": "garden", "kind": "camera", "host": hosts[1],
             "checks": [tcp_check(PORT)]},
            # Same host at another community: only a site label tells them apart.
            {"id": "cam-lake", "site": "lake", "kind": "camera", "host": hosts[1],
             "checks": [tcp_check(PORT)]}],
        **(extra or {})}, allow_unicode=True), encoding="utf-8")
    return path


# -- mapping (no sockets) -------------------------------------------------------------
def test_instance_label_matches_a_device_by_host_id_or_url(tmp_path: Path) -> None:
    assert host_of("10.0.0.5:9100") == "10.0.0.5"
    assert host_of("[::1]:9100") == "::1"
    assert host_of("http://Cam-01.lan:8080/x") == "cam-01.lan"
    assert host_of("nvr.lan") == "nvr.lan"
    config = load_config(write_config(tmp_path / "c.yaml", ["127.0.0.2", "127.0.0.3"]))
    index = DeviceIndex(d.target for d in config.devices.values())
    model = AlertmanagerConfig()
    body = Payload.model_validate(payload(
        alert("firing", "127.0.0.2:9100"),
        alert("firing", "http://127.0.0.3/", site="lake"),
        alert("firing", "x", device="cam-01", severity="critical"),
        alert("firing", "127.0.0.3:9100"),  # two devices on that host, no site label
        alert("firing", "127.0.0.2:9100", site="lake")))  # host known at another site
    faults, unmapped = to_transitions(body, index, model, now=2e9)
    assert [f.device for f in faults] == ["nvr-01", "cam-lake", "cam-01"]
    assert [f.severity for f in faults] == ["general", "general", "emergency"]
    assert faults[0].rule == "alertmanager:NvrDiskFailing"
    assert faults[0].name_zh == "录像机硬盘故障" and faults[0].name_en == "NVR disk failing"
    assert faults[0].system == "cctv" and faults[0].state is FaultState.FIRING
    assert faults[0].at == pytest.approx(1795680000.123456)  # startsAt, not arrival
    assert "several devices" in unmapped[0].reason and "cam-01, cam-lake" in unmapped[0].reason
    assert "no device at site 'lake'" in unmapped[1].reason


def test_alert_identity_is_its_label_set(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", ["127.0.0.2", "127.0.0.3"]))
    index, model = DeviceIndex(d.target for d in config.devices.values()), AlertmanagerConfig()
    sda = alert("firing", "127.0.0.2", disk="sda")
    sdb = alert("firing", "127.0.0.2", disk="sdb")
    (a,), _ = to_transitions(Payload.model_validate(payload(sda)), index, model)
    (b,), _ = to_transitions(Payload.model_validate(payload(sdb)), index, model)
    (again,), _ = to_transitions(Payload.model_validate(payload(sda)), index, model)
    assert a.fingerprint != b.fingerprint and a.fingerprint == again.fingerprint
    # Alert names are the sender's text: bounded to fit the store's rule column.
    (long,), _ = to_transitions(Payload.model_validate(payload(
        alert("firing", "127.0.0.2", name="Disk\x00" + "x" * 300))), index, model)
    assert len(long.rule) <= 128 and "\x00" not in long.rule


def test_alertmanager_and_tickets_settings_are_checked_at_load(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", ["127.0.0.2", "127.0.0.3"], extra={
        "tickets": {"verify_after_polls": 0, "reopen_window": "soon"},
        "alertmanager": {"severity_map": {"critical": "urgent"}, "device_lable": ["x"]}})
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    text = str(caught.value)
    assert "tickets.verify_after_polls: Input should be greater than or equal to 1" in text
    assert "tickets.reopen_window" in text and "'soon'" in text
    assert "alertmanager.severity_map.critical: Input should be 'general'" in text
    assert "alertmanager.device_lable: unknown key" in text
    ok = write_config(tmp_path / "c.yaml", ["127.0.0.2", "127.0.0.3"], extra={
        "tickets": {"verify_after_polls": 5, "reopen_window": "36h"},
        "alertmanager": {"device_labels": ["nvr"], "severity_map": {"p1": "major"}}})
    model = load_config(ok).model
    assert model.tickets.verify_after_polls == 5 and model.tickets.reopen_window == 36 * 3600
    assert model.alertmanager.severity_map == {"p1": "major"}


# -- a running daemon over loopback -----------------------------------------------------
@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[App, str, LabFleet]]:
    port = free_port()
    async with LabFleet(2, first_address(), [PORT]) as fleet:
        config = load_config(write_config(tmp_path / "c.yaml", [d.host for d in fleet.devices],
                                          listen=f"127.0.0.1:{port}"))
        app = App(config, HttpListener())
        await app.start()
        try:
            assert app.tickets is not None
            assert app.tickets.verify_after_polls == 1000  # the config reached the manager
            yield app, f"http://127.0.0.1:{port}/api/v1/alertmanager", fleet
        finally:
            await app.stop()


async def post(url: str, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if not isinstance(body, str | bytes):
        headers["Content-Type"] = "application/json"
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, str | bytes) else None
        async with session.post(url, json=None if data is not None else body, data=data,
                                headers=headers) as resp:
            return resp.status, await resp.json()


async def test_firing_alert_opens_one_ticket_and_resolved_alert_resolves_it(
        daemon: tuple[App, str, LabFleet]) -> None:
    app, url, fleet = daemon
    assert app.tickets is not None
    nvr = fleet.devices[0]
    firing = payload(alert("firing", f"{nvr.host}:9100", severity="critical"))

    status, body = await post(url, firing)
    assert status == 200, body
    assert body["accepted"] == 1 and [e["kind"] for e in body["events"]] == ["opened", "escalated"]
    (ticket,) = await app.tickets.list_tickets(kind="fault")
    assert ticket.device == "nvr-01" and ticket.rule == "alertmanager:NvrDiskFailing"
    assert ticket.severity == "emergency" and ticket.state == "open"
    assert ticket.title_zh == "nvr-01 录像机硬盘故障"
    assert ticket.summary == "smart status bad on sda"
    assert ticket.opened_at == pytest.approx(1795680000.123456)
    assert ticket.response_due is not None and ticket.response_due > ticket.opened_at

    # Alertmanager re-sends a firing group every group_interval: still one ticket.
    for _ in range(3):
        status, body = await post(url, firing)
        assert status == 200 and body["events"] == []
    assert len(await app.tickets.list_tickets(kind="fault")) == 1

    status, body = await post(url, payload(alert("resolved", f"{nvr.host}:9100",
                                                 severity="critical"), status="resolved"))
    assert status == 200 and [e["kind"] for e in body["events"]] == ["resolved"]
    final = (await app.tickets.get(ticket.number)).ticket
    assert final.state == "resolved" and final.recovered_without_intervention
    assert final.resolved_at == pytest.approx(1795683600.0)  # endsAt
    # The ticket events went the usual way (to the notifier queue / metrics refresh).
    await until(lambda: app.ticket_stats is not None, what="ticket figures")

    # After a restart the rule engine does not know this fault; resync must not clear it.
    status, _ = await post(url, payload(alert("firing", f"{nvr.host}:9100", name="Other")))
    assert status == 200
    await app.tickets.resync(set(), 2e9, keep_rules=("alertmanager:",))
    (other,) = await app.tickets.list_tickets(state="open")
    assert other.rule == "alertmanager:Other"


async def test_webhook_needs_the_token(daemon: tuple[App, str, LabFleet]) -> None:
    app, url, fleet = daemon
    assert app.tickets is not None
    body = payload(alert("firing", fleet.devices[0].host))
    assert (await post(url, body, token=None))[0] == 401
    assert (await post(url, body, token="wrong"))[0] == 401
    assert await app.tickets.list_tickets(kind="fault") == []


@pytest.mark.parametrize(("body", "message"), [
    ("{not json", "the body is not JSON"),
    ({"version": "3", "status": "firing", "alerts": []}, "version: Input should be '4'"),
    ({"version": "4", "status": "firing"}, "alerts: Field required"),
    (payload({**alert("firing", "h"), "status": "pending"}),
     "alerts.0.status: Input should be 'firing' or 'resolved'"),
    (payload({**alert("firing", "h"), "labels": {"instance": "h"}}),
     "alerts.0.labels: Value error, an alert needs an alertname label"),
    (payload({**alert("firing", "h"), "startsAt": "yesterday"}), "alerts.0.startsAt"),
    (payload({**alert("firing", "h"), "startsAt": "2026-11-26T08:00:00"}),
     "times need a time zone"),
    ([1, 2], "Input should be a valid dictionary"),
    # Nested past what json.loads can recurse (it used to answer 500), and deeper than
    # any payload but still parseable.
    ("[" * 100_000 + "]" * 100_000, "the JSON body is nested more than 32 levels deep"),
    ({**payload(alert("firing", "h")), "commonLabels": _nested(40)},
     "the JSON body is nested more than 32 levels deep"),
])
async def test_bad_payloads_are_refused_with_400_saying_why(
        daemon: tuple[App, str, LabFleet], body: Any, message: str) -> None:
    app, url, _ = daemon
    assert app.tickets is not None
    status, reply = await post(url, body)
    assert status == 400
    assert message in reply["error"], reply
    assert await app.tickets.list_tickets(kind="fault") == []


async def test_alerts_of_unknown_devices_get_422_listing_them_the_rest_is_handled(
        daemon: tuple[App, str, LabFleet]) -> None:
    app, url, fleet = daemon
    assert app.tickets is not None
    status, body = await post(url, payload(
        alert("firing", "10.99.0.1:9100", name="HostDown"),
        alert("firing", fleet.devices[0].host, name="NvrDiskFailing"),
        {**alert("firing", "x"), "labels": {"alertname": "NoInstance"}}))
    assert status == 422
    assert body["accepted"] == 1
    assert [(u["alertname"], u["reason"]) for u in body["unmapped"]] == [
        ("HostDown", "no device has id or host '10.99.0.1:9100'"),
        ("NoInstance", "no label of device, instance names a device")]
    (ticket,) = await app.tickets.list_tickets(kind="fault")
    assert ticket.device == "nvr-01"


async def test_openapi_lists_the_webhook(daemon: tuple[App, str, LabFleet]) -> None:
    _, url, _ = daemon
    async with aiohttp.ClientSession() as session, session.get(
            url.replace("/alertmanager", "/openapi.json")) as resp:
        doc = await resp.json()
    assert doc["paths"]["/api/v1/alertmanager"]["post"]["security"] == [{"bearer": []}]
