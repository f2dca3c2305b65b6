"""The `elvwatch` command line as an engineer runs it: probe, status, devices."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.web.server import HttpListener
from tests.test_daemon import PORT, first_address

ROOT = Path(__file__).parent.parent


def elvwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elvwatch.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


async def aelvwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI off the event loop, so lab devices in this loop can answer it."""
    return await asyncio.to_thread(elvwatch, *args)


def config_for(tmp_path: Path, fleet: LabFleet) -> Path:
    path = tmp_path / "config.yaml"
    devices = fleet.config_devices("lab", "camera", [tcp_check(PORT)])
    devices[0]["location"] = {"building": "3号楼", "place": "电梯厅"}
    path.write_text(yaml.safe_dump({
        "http": {"listen": "127.0.0.1:1"},   # nothing listens: status reads the store
        "sites": [{"id": "lab", "name": "实验小区"}], "devices": devices},
        allow_unicode=True), encoding="utf-8")
    return path


async def test_probe_url_prints_the_documented_json_and_exit_codes() -> None:
    async with LabFleet(1, first_address(), [PORT]) as fleet:
        host = fleet.devices[0].host
        ok = await aelvwatch("probe", f"tcp://{host}:{PORT}?expect=ELVLAB", "--json",
                      "--kind", "camera")
        assert ok.returncode == 0, ok.stderr
        result = json.loads(ok.stdout)
        assert set(result) == {"device", "kind", "status", "info", "observations"}
        assert result["kind"] == "camera" and result["status"] == "ok"
        assert result["info"] == {"vendor": None, "model": None, "firmware": None,
                                  "serial": None}
        (obs,) = result["observations"]
        assert set(obs) == {"check", "status", "values", "latency_seconds", "error"}
        assert obs["check"] == f"tcp_{PORT}" and obs["error"] is None
        assert obs["values"]["tcp.connect_seconds"] > 0
        await fleet.set_fault(fleet.devices[0].id, Fault.DOWN)
        bad = await aelvwatch("probe", f"tcp://{host}:{PORT}")
        assert bad.returncode == 1
        assert "connection refused" in bad.stdout and "down" in bad.stdout
    icmp = elvwatch("probe", "icmp://127.0.0.1", "--json")
    assert icmp.returncode == 0, icmp.stdout + icmp.stderr
    assert json.loads(icmp.stdout)["observations"][0]["values"]["icmp.packet_loss_ratio"] == 0


def test_probe_usage_errors_exit_2() -> None:
    assert elvwatch("probe", "gopher://127.0.0.1").returncode == 2
    assert elvwatch("probe", "tcp://127.0.0.1").returncode == 2        # no port
    no_secret = elvwatch("probe", "tcp://admin:pw@127.0.0.1:80")
    assert no_secret.returncode == 2 and "pw" not in no_secret.stderr
    assert elvwatch("probe", "cam-1").returncode == 2                  # no -c
    assert elvwatch("probe").returncode == 2


def test_probe_never_prints_an_snmp_community_given_in_the_url() -> None:
    community = "s3cret-community-77"
    # An agent that says nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        for extra in ([], ["--json"]):
            done = elvwatch("probe", f"snmp://{community}@127.0.0.1:{port}", "--timeout",
                            "0.5", *extra)
            assert done.returncode == 1, done.stderr
            assert community not in done.stdout + done.stderr
            assert f"snmp://***@127.0.0.1:{port}" in done.stdout
        assert json.loads(done.stdout)["device"] == f"snmp://***@127.0.0.1:{port}"
    for url in (f"snmp://{community}@127.0.0.1:{port}?version=9",
                f"snmp://{community}@127.0.0.1:99999", f"gopher://{community}@127.0.0.1",
                f"snmp://{community}@[::1"):
        refused = elvwatch("probe", url)
        assert refused.returncode == 2, refused.stderr
        assert community not in refused.stdout + refused.stderr
        assert "***@" in refused.stderr, refused.stderr


def test_probe_timeout_below_what_onvif_needs_is_refused_with_a_message() -> None:
    short = elvwatch("probe", "onvif://127.0.0.1:9", "--timeout", "3")
    assert short.returncode == 2
    assert short.stderr.strip() == (
        "elvwatch probe: onvif:// needs a timeout of at least 10s (a chain of up to eight "
        "requests and, on first use, parsing the WSDLs); 3s is too short")


async def test_probe_device_from_config_and_status_from_the_store(tmp_path: Path) -> None:
    async with LabFleet(3, first_address(), [PORT]) as fleet:
        config = config_for(tmp_path, fleet)
        first = fleet.devices[0]
        result = await aelvwatch("probe", first.id, "-c", str(config), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["device"] == first.id
        missing = await aelvwatch("probe", "no-such-device", "-c", str(config))
        assert missing.returncode == 2 and "no-such-device" in missing.stderr

    # With no daemon answering, status reads what the store holds: nothing yet.
    status = elvwatch("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "daemon not reachable" in status.stdout
    assert f"{first.id}  lab   cctv    camera  unknown" in status.stdout
    assert "3号楼 / 电梯厅" in status.stdout
    summary = status.stdout.strip().splitlines()[-2:]
    assert summary[0].split() == ["SITE", "UP", "DEGRADED", "DOWN", "UNKNOWN", "TOTAL"]
    assert summary[1].split() == ["lab", "0", "0", "0", "3", "3"]
    as_json = json.loads(elvwatch("status", "-c", str(config), "--json").stdout)
    assert len(as_json["devices"]) == 3
    assert elvwatch("status", "-c", str(config), "--site", "nowhere").returncode == 2


def test_devices_import_then_export_round_trip(tmp_path: Path) -> None:
    source = ROOT / "tests" / "data" / "inventory" / "devices_zh.csv"
    out = tmp_path / "inventory.yaml"
    imported = elvwatch("devices", "import", str(source), "--site", "lab", "-o", str(out))
    assert imported.returncode == 0, imported.stderr
    count = len(yaml.safe_load(out.read_text(encoding="utf-8"))["devices"])
    assert f"imported {count} devices" in imported.stderr
    config = tmp_path / "config.yaml"
    sites = {yaml.safe_load(out.read_text(encoding="utf-8"))["devices"][i]["site"]
             for i in range(count)}
    config.write_text(yaml.safe_dump({
        "sites": [{"id": s, "name": s} for s in sorted(sites)],
        "include": ["inventory.yaml"]}), encoding="utf-8")
    checked = elvwatch("check", "-c", str(config))
    assert checked.returncode == 0, checked.stderr
    assert f"{count} devices" in checked.stdout
    csv_out = tmp_path / "devices.csv"
    exported = elvwatch("devices", "export", "-c", str(config), "-o", str(csv_out),
                        "--lang", "zh-CN")
    assert exported.returncode == 0, exported.stderr
    assert csv_out.read_bytes().startswith(b"\xef\xbb\xbf")   # BOM for Excel
    again = elvwatch("devices", "import", str(csv_out), "-o", str(tmp_path / "again.yaml"))
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load((tmp_path / "again.yaml").read_text(encoding="utf-8")) == \
        yaml.safe_load(out.read_text(encoding="utf-8"))


def test_devices_import_reports_bad_rows_and_exits_1(tmp_path: Path) -> None:
    source = ROOT / "tests" / "data" / "inventory" / "bad_rows.csv"
    result = elvwatch("devices", "import", str(source), "--site", "lab")
    assert result.returncode == 1
    assert ": row " in result.stderr
    assert "rows with errors" in result.stderr


async def test_status_asks_the_running_daemon_and_lists_down_devices_first(
        tmp_path: Path) -> None:
    from elvwatch.config.loading import load_config
    from elvwatch.daemon.app import App
    from elvwatch.rules.state import DeviceState
    from tests.helpers import until
    from tests.test_daemon import free_port, write_config

    port = free_port()
    async with LabFleet(3, first_address(), [PORT]) as fleet:
        path = write_config(tmp_path / "c.yaml", fleet, listen=f"127.0.0.1:{port}",
                            down_after=1)
        app = App(load_config(path), HttpListener())
        await app.start()
        try:
            victim = fleet.devices[1].id
            await fleet.set_fault(victim, Fault.DOWN)
            await until(lambda: app.tracker.devices[victim].state is DeviceState.DOWN)
            result = await aelvwatch("status", "-c", str(path))
        finally:
            await app.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "daemon not reachable" not in result.stdout
    assert lines[0].split()[:5] == ["DEVICE", "SITE", "SYSTEM", "KIND", "STATE"]
    assert lines[1].split()[:5] == [victim, "lab", "cctv", "camera", "down"]
    assert "connection refused" in lines[1] or "did not answer" in lines[1]
    assert lines[-1].split() == ["lab", "2", "0", "1", "0", "3"]


def test_demo_serves_a_simulated_community_and_stops_by_itself(tmp_path: Path) -> None:
    from tests.test_daemon import free_port, http_get

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "elvwatch.cli", "demo", "--listen", f"127.0.0.1:{port}",
         "--dir", str(tmp_path), "--duration", "12"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = []
        for _ in range(30):  # log lines come first; the banner follows within a few lines
            banner.append(proc.stdout.readline())
            if "simulated devices" in banner[-1]:
                break
        assert "simulated devices" in banner[-1], banner
        import time

        deadline = time.monotonic() + 10
        devices: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            code, body = http_get(f"http://127.0.0.1:{port}/api/v1/devices")
            devices = json.loads(body)["devices"] if code == 200 else []
            if devices and all(d["state"] == "up" for d in devices):
                break
            time.sleep(0.5)
        assert len(devices) == 12
        assert all(d["state"] == "up" for d in devices), devices
        assert {d["kind"] for d in devices} >= {"camera", "nvr", "switch", "access_panel",
                                                "alarm_panel", "door_station", "ups",
                                                "intercom_server"}
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
