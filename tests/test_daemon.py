"""The daemon end to end against lab devices on loopback, with a real store."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.exporters.exposition import render
from elvwatch.exporters.metrics import families as metric_families
from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.probes.base import Status
from elvwatch.rules.state import DeviceState
from elvwatch.tickets.store import Store
from elvwatch.web.server import HttpListener, metrics_body
from tests.helpers import until

ROOT = Path(__file__).parent.parent
PORT = 18554


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_address() -> str:
    return f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"


def write_config(path: Path, fleet: LabFleet, *, listen: str, storage: str | None = None,
                 down_after: int = 3, interval: float = 0.2, extra: list[Any] | None = None
                 ) -> Path:
    data: dict[str, Any] = {
        "http": {"listen": listen},
        "interval": interval,
        "timeout": min(interval, 1.0),
        "scheduler": {"down_after": down_after, "jitter": 0.0},
        "sites": [{"id": "lab", "name": "实验小区", "contract": {"start": "2026-01-01"}}],
        "devices": fleet.config_devices("lab", "camera", [tcp_check(PORT)]) + (extra or []),
    }
    if storage:
        data["storage"] = {"url": storage}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@asynccontextmanager
async def fleet_of(count: int) -> AsyncIterator[LabFleet]:
    fleet = LabFleet(count, first_address(), [PORT])
    async with fleet:
        yield fleet


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def aget(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, url)


@pytest.mark.parametrize("down_after", [1, 3])
async def test_stopped_device_goes_down_after_the_configured_failures_and_back_up(
        tmp_path: Path, down_after: int) -> None:
    async with fleet_of(3) as fleet:
        config = load_config(write_config(tmp_path / "c.yaml", fleet, listen="127.0.0.1:0",
                                          down_after=down_after))
        app = App(config)
        await app.start()
        try:
            victim = fleet.devices[1].id
            status = app.tracker.devices
            await until(lambda: all(s.state is DeviceState.UP for s in status.values()),
                        what="every device up")
            seen: list[Status] = []
            original = app.tracker.observe

            def spy(obs: Any) -> Any:
                if obs.device == victim:
                    seen.append(obs.status)
                return original(obs)

            app.tracker.observe = spy  # type: ignore[method-assign]
            await fleet.set_fault(victim, Fault.DOWN)
            await until(lambda: status[victim].state is DeviceState.DOWN, what="down")
            # Exactly the configured number of failed runs turned it down.
            assert seen.count(Status.DOWN) == down_after
            assert all(status[d.id].state is DeviceState.UP
                       for d in fleet.devices if d.id != victim)
            await fleet.set_fault(victim, Fault.NONE)
            await until(lambda: status[victim].state is DeviceState.UP, what="back up")
        finally:
            await app.stop()
    async with await Store.open(config.storage_url) as store:
        history = await store.transitions(victim)
    assert [(t.previous, t.state) for t in history] == [
        (DeviceState.UNKNOWN, DeviceState.UP), (DeviceState.UP, DeviceState.DOWN),
        (DeviceState.DOWN, DeviceState.UP)]
    assert "connection refused" in history[1].cause


@pytest.mark.postgres
async def test_state_transitions_persist_in_postgresql(tmp_path: Path, store_url: str) -> None:
    async with fleet_of(2) as fleet:
        config = load_config(write_config(tmp_path / "c.yaml", fleet, listen="127.0.0.1:0",
                                          storage=store_url, down_after=1))
        app = App(config)
        await app.start()
        try:
            victim = fleet.devices[0].id
            status = app.tracker.devices
            await until(lambda: status[victim].state is DeviceState.UP, what="up")
            await fleet.set_fault(victim, Fault.DOWN)
            await until(lambda: status[victim].state is DeviceState.DOWN, what="down")
        finally:
            await app.stop()
    # A restarted daemon continues from the stored state.
    async with await Store.open(store_url) as store:
        states = await store.current_states()
        assert states[victim][0] is DeviceState.DOWN
        assert [t.state for t in await store.transitions(victim)] == [DeviceState.UP,
                                                                     DeviceState.DOWN]
    again = App(config)
    await again.start()
    try:
        assert again.tracker.devices[victim].state is DeviceState.DOWN
    finally:
        await again.stop()


def series_lines(body: bytes) -> set[str]:
    """The series of a scrape, names and labels without their values (which may move
    between two scrapes while checks run)."""
    return {line.rpartition(" ")[0] for line in body.decode().splitlines()
            if line and not line.startswith("#")}


async def test_http_api_metrics_and_openapi(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with fleet_of(3) as fleet:
        config = load_config(write_config(tmp_path / "c.yaml", fleet,
                                          listen=f"127.0.0.1:{port}", down_after=1))
        app = App(config, HttpListener())
        await app.start()
        try:
            victim = fleet.devices[2].id
            await fleet.set_fault(victim, Fault.DOWN)
            status = app.tracker.devices
            await until(lambda: status[victim].state is DeviceState.DOWN
                        and status[fleet.devices[0].id].state is DeviceState.UP)
            code, body = await aget(f"{base}/metrics")
            assert code == 200
            families = {f.name: f for f in text_string_to_metric_families(body)}
            for name in ("elvwatch_device_up", "elvwatch_check_up",
                         "elvwatch_check_duration_seconds", "elvwatch_device_info",
                         "elvwatch_scheduler_lag_seconds", "elvwatch_scheduler_checks_in_flight",
                         "elvwatch_scheduler_checks_run", "elvwatch_config_last_reload_successful"):
                assert name in families, name
            up = {s.labels["device"]: s.value for s in families["elvwatch_device_up"].samples}
            assert up[victim] == 0.0 and up[fleet.devices[0].id] == 1.0
            # A scrape is rendered in slices with the loop let run in between; sliced or
            # whole, the series are the same.
            turns = 0

            async def count_turns() -> None:
                nonlocal turns
                while True:
                    turns += 1
                    await asyncio.sleep(0)
            counter = asyncio.create_task(count_turns())
            await asyncio.sleep(0)
            sliced = await metrics_body(app, slice_devices=1)
            counter.cancel()
            assert turns >= 3  # one turn per device at least
            assert series_lines(sliced) == series_lines(render(metric_families(app.snapshot())))
            sample = next(s for s in families["elvwatch_check_up"].samples
                          if s.labels["device"] == victim)
            assert sample.labels == {"site": "lab", "system": "cctv", "device": victim,
                                     "kind": "camera", "check": f"tcp_{PORT}"}
            lag = families["elvwatch_scheduler_lag_seconds"]
            assert lag.type == "histogram"
            runs = {s.labels["status"]: s.value for s in
                    families["elvwatch_scheduler_checks_run"].samples
                    if s.name.endswith("_total")}
            assert runs["ok"] > 0 and runs["down"] > 0
            promtool = shutil.which("promtool")
            if promtool is None and os.environ.get("CI"):
                pytest.fail("promtool is missing; .ci/run installs the prometheus package")
            if promtool:
                check = await asyncio.to_thread(
                    subprocess.run, [promtool, "check", "metrics"], input=body, text=True,
                    capture_output=True, timeout=30)
                assert check.returncode == 0, check.stdout + check.stderr

            code, body = await aget(f"{base}/api/v1/devices?state=down")
            assert code == 200
            assert [d["id"] for d in json.loads(body)["devices"]] == [victim]
            code, body = await aget(f"{base}/api/v1/devices/{victim}")
            detail = json.loads(body)
            assert detail["state"] == "down" and detail["site"] == "lab"
            assert detail["checks"][0]["status"] == "down"
            assert f"port {PORT}" in detail["checks"][0]["error"]
            code, body = await aget(f"{base}/api/v1/devices/nope")
            assert code == 404 and "nope" in json.loads(body)["error"]
            code, body = await aget(f"{base}/healthz")
            assert code == 200 and json.loads(body)["devices"] == 3
            code, body = await aget(f"{base}/api/v1/openapi.json")
            doc = json.loads(body)
            assert doc["openapi"].startswith("3.")
            assert {"/api/v1/devices", "/api/v1/devices/{id}", "/metrics",
                    "/healthz", "/probe"} <= set(doc["paths"])
            for ref in _refs(doc):
                name = ref.removeprefix("#/components/schemas/")
                assert name in doc["components"]["schemas"], ref
        finally:
            await app.stop()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_probe_endpoint_returns_metrics_for_one_target(tmp_path: Path) -> None:
    port = free_port()
    async with fleet_of(1) as fleet:
        config = load_config(write_config(tmp_path / "c.yaml", fleet,
                                          listen=f"127.0.0.1:{port}"))
        app = App(config, HttpListener())
        await app.start()
        try:
            host = fleet.devices[0].host
            code, body = await aget(
                f"http://127.0.0.1:{port}/probe?target=tcp://{host}:{PORT}&module=camera")
            assert code == 200
            samples = {s.name: s for f in text_string_to_metric_families(body)
                       for s in f.samples}
            assert samples["elvwatch_probe_success"].value == 1.0
            assert samples["elvwatch_tcp_connect_seconds"].value > 0
            await fleet.set_fault(fleet.devices[0].id, Fault.DOWN)
            code, body = await aget(
                f"http://127.0.0.1:{port}/probe?target=tcp://{host}:{PORT}")
            samples = {s.name: s for f in text_string_to_metric_families(body)
                       for s in f.samples}
            assert samples["elvwatch_probe_success"].value == 0.0
            code, body = await aget(f"http://127.0.0.1:{port}/probe?target=gopher://x")
            assert code == 400 and "unknown scheme" in body
        finally:
            await app.stop()


# -- the daemon as a process: signals ------------------------------------------------
def _start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "elvwatch.cli", "run",
                                 "-c", str(config)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _metric(base: str, name: str) -> float | None:
    _, body = http_get(f"{base}/metrics")
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


async def test_sighup_with_a_bad_config_keeps_the_old_one_and_sigterm_exits_cleanly(
        tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with fleet_of(2) as fleet:
        config = write_config(tmp_path / "c.yaml", fleet, listen=f"127.0.0.1:{port}",
                              interval=0.5)
        good = config.read_text()
        log = tmp_path / "daemon.log"
        proc = _start_daemon(config, log)
        try:
            await _wait_healthy(base, proc, log)
            config.write_text(good + "devices_typo: []\n")
            proc.send_signal(signal.SIGHUP)
            await until(lambda: "reload failed" in log.read_text(), what="reload failure")
            assert await asyncio.to_thread(
                _metric, base, "elvwatch_config_last_reload_successful") == 0.0
            _, body = await aget(f"{base}/api/v1/devices")
            assert len(json.loads(body)["devices"]) == 2  # the old config still runs
            assert "devices_typo: unknown key" in log.read_text()

            extra = [{"id": "cam-new", "site": "lab", "kind": "camera",
                      "host": fleet.devices[0].host, "checks": [tcp_check(PORT)]}]
            write_config(config, fleet, listen=f"127.0.0.1:{port}", interval=0.5,
                         extra=extra)
            proc.send_signal(signal.SIGHUP)
            await until(lambda: "config reloaded" in log.read_text(), what="reload")
            _, body = await aget(f"{base}/api/v1/devices")
            assert len(json.loads(body)["devices"]) == 3
            assert await asyncio.to_thread(
                _metric, base, "elvwatch_config_last_reload_successful") == 1.0
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 20)
            assert code == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _post(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            code, _ = await aget(f"{base}/healthz")
            if code == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None, _text(log)
        assert time.monotonic() < deadline, _text(log)
        await asyncio.sleep(0.1)


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


async def test_reload_that_cannot_start_a_source_keeps_the_old_config_by_sighup_and_post(
        tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = "reload-token-1"
    (tmp_path / "http.token").write_text(token + "\n")
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    trap_port = taken.getsockname()[1]
    async with fleet_of(2) as fleet:
        config = write_config(tmp_path / "c.yaml", fleet, listen=f"127.0.0.1:{port}",
                              interval=0.5)
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["http"]["token_file"] = "http.token"
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        log = tmp_path / "daemon.log"
        proc = _start_daemon(config, log)
        try:
            await _wait_healthy(base, proc, log)
            # Valid, so `check` accepts it, but its trap listener's port is taken: the
            # new config cannot be put to work, and nothing of it may be.
            data["sources"] = {"snmp_trap": {"listen": f"127.0.0.1:{trap_port}"}}
            data["devices"].append({"id": "cam-new", "site": "lab", "kind": "camera",
                                    "host": fleet.devices[0].host,
                                    "checks": [tcp_check(PORT)]})
            config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            await until(lambda: "reload failed" in log.read_text(), what="reload failure")
            assert "sources.snmp_trap: snmp_trap: cannot listen on" in log.read_text()
            assert await asyncio.to_thread(
                _metric, base, "elvwatch_config_last_reload_successful") == 0.0
            _, body = await aget(f"{base}/api/v1/devices")
            assert len(json.loads(body)["devices"]) == 2

            code, body = await asyncio.to_thread(_post, f"{base}/api/v1/reload", token)
            assert code == 422 and "cannot listen on" in json.loads(body)["error"]
            _, body = await aget(f"{base}/api/v1/devices")
            assert len(json.loads(body)["devices"]) == 2

            taken.close()
            code, body = await asyncio.to_thread(_post, f"{base}/api/v1/reload", token)
            assert code == 200, body
            _, body = await aget(f"{base}/api/v1/devices")
            assert len(json.loads(body)["devices"]) == 3
            assert await asyncio.to_thread(
                _metric, base, "elvwatch_config_last_reload_successful") == 1.0
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 20) == 0, log.read_text()
            text = log.read_text()
            assert "Traceback" not in text and "never retrieved" not in text, text
        finally:
            taken.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_run_with_its_port_taken_exits_1_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with fleet_of(1) as fleet:
            config = write_config(tmp_path / "c.yaml", fleet, listen=f"127.0.0.1:{port}")
            done = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "elvwatch.cli", "run", "-c",
                                 str(config)],
                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot start:" in done.stderr and f"127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


async def test_loopback_reads_without_a_token_need_a_loopback_host_header(
        tmp_path: Path) -> None:
    """DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1
    reaches the listener from loopback, but its requests carry Host: evil.example."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "http.token").write_text("host-token\n")
    async with fleet_of(1) as fleet:
        path = write_config(tmp_path / "c.yaml", fleet, listen=f"127.0.0.1:{port}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["http"].update(token_file="http.token", allowed_hosts=["elvwatch.lan"])
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = App(load_config(path), HttpListener())
        await app.start()
        try:
            async with aiohttp.ClientSession() as session:
                async def status(path: str, host: str, **headers: str) -> int:
                    async with session.get(f"{base}{path}",
                                           headers={"Host": host, **headers}) as resp:
                        return resp.status

                for refused in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                                "localhost.evil.example", "[::2]", "10.0.0.1"):
                    for where in ("/api/v1/devices", "/metrics", "/", "/probe?target=icmp://127.0.0.1"):
                        assert await status(where, refused) == 421, (refused, where)
                for allowed in (f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}",
                                "[::1]", f"[::1]:{port}", "127.9.9.9", "elvwatch.lan",
                                f"elvwatch.lan:{port}", "app.localhost"):
                    assert await status("/api/v1/devices", allowed) == 200, allowed
                # The bearer token is not something a rebinding page has: any Host.
                assert await status("/api/v1/devices", "evil.example",
                                    Authorization="Bearer host-token") == 200
                async with session.get(f"{base}/api/v1/devices",
                                       headers={"Host": "evil.example"}) as resp:
                    body = await resp.json()
                assert "http.allowed_hosts" in body["error"] and "devices" not in body
        finally:
            await app.stop()


async def test_probe_reports_a_scrape_timeout_shorter_than_the_probe_needs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from elvwatch.lab.onvif import OnvifSimulator

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with fleet_of(1) as fleet, OnvifSimulator() as camera:
        app = App(load_config(write_config(tmp_path / "c.yaml", fleet,
                                           listen=f"127.0.0.1:{port}")), HttpListener())
        await app.start()
        try:
            async with aiohttp.ClientSession() as session:
                async def probe(target: str, scrape: str | None) -> tuple[int, str]:
                    headers = {} if scrape is None else {
                        "X-Prometheus-Scrape-Timeout-Seconds": scrape}
                    async with session.get(f"{base}/probe", params={"target": target},
                                           headers=headers) as resp:
                        return resp.status, await resp.text()

                onvif = f"onvif://127.0.0.1:{camera.port}?stream=0"
                code, body = await probe(onvif, "5")
                assert code == 400
                assert json.loads(body)["error"] == (
                    "X-Prometheus-Scrape-Timeout-Seconds 5s is shorter than the probe needs: "
                    "onvif:// needs a timeout of at least 10s (a chain of up to eight "
                    "requests and, on first use, parsing the WSDLs); 4.5s is too short; "
                    "raise this job's scrape_timeout")
                for scrape in ("12", None):  # honoured: 11.5 s, or the scheme's default
                    code, body = await probe(onvif, scrape)
                    assert code == 200, body
                    assert "elvwatch_probe_success 1.0" in body
                mqtt = "mqtt://127.0.0.1:1/site/door?listen=10"
                code, body = await probe(mqtt, "5")
                assert code == 400 and "listens 10s" in json.loads(body)["error"]
                code, body = await probe(f"tcp://{fleet.devices[0].host}:{PORT}", "0.3")
                assert code == 400 and "0.5s of it go to sending the answer back" in body
                code, body = await probe(f"tcp://{fleet.devices[0].host}:{PORT}", "soon")
                assert code == 400 and "is not a number of seconds" in body
                for _ in range(3):  # every scrape answers; the log says it once
                    assert (await probe(onvif, "5"))[0] == 400
            said = [r for r in caplog.records if "shorter than the probe needs: onvif" in
                    r.getMessage()]
            assert len(said) == 1 and said[0].levelname == "WARNING"
        finally:
            await app.stop()
