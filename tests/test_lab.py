"""The lab's simulated devices, control API and CLI, on real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.__main__ import write_config
from elvwatch.lab.control import ControlServer, require_loopback
from elvwatch.lab.devices import (
    Fault,
    LabDevice,
    LabError,
    LabFleet,
    lab_checks,
    loopback_addresses,
)
from elvwatch.probes.base import Check, Status, Target
from elvwatch.probes.tcp import probe_tcp

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0


def random_first() -> str:
    """A first address unlikely to be used by a parallel run."""
    return f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"


def random_port() -> int:
    return random.randint(20_000, 60_000)


async def read_banner(host: str, port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        return await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.fixture
async def fleet() -> AsyncIterator[LabFleet]:
    async with LabFleet(5, random_first(), (random_port(), random_port())) as started:
        yield started


def test_addresses_are_consecutive_loopback_skipping_0_and_255() -> None:
    assert loopback_addresses("127.9.0.254", 4) == [
        "127.9.0.254", "127.9.1.1", "127.9.1.2", "127.9.1.3"]
    for outside in ("10.0.0.1", "192.168.1.1", "0.0.0.0", "localhost"):
        with pytest.raises(LabError):
            loopback_addresses(outside, 1)
    with pytest.raises(LabError, match="run past"):
        loopback_addresses("127.255.255.250", 10)


async def test_device_writes_banner_and_answers_each_line(fleet: LabFleet) -> None:
    device = fleet.devices[0]
    reader, writer = await asyncio.open_connection(device.host, device.ports[1])
    try:
        banner = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert banner == f"ELVLAB {device.id}\r\n".encode()
        writer.write(b"PING\r\nSTATUS\n")
        await writer.drain()
        answers = [await asyncio.wait_for(reader.readline(), TIMEOUT) for _ in range(2)]
        assert answers == [b"OK\r\n", b"OK\r\n"]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_down_refuses_connections_and_none_brings_it_back(fleet: LabFleet) -> None:
    device = fleet.devices[2]
    port = device.ports[0]
    reader, writer = await asyncio.open_connection(device.host, port)
    try:
        await asyncio.wait_for(reader.readline(), TIMEOUT)
        await fleet.set_fault(device.id, Fault.DOWN)
        # The open connection is dropped, and new ones are refused on every port.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(100), TIMEOUT) == b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert not device.listening
    for down_port in device.ports:
        with pytest.raises(ConnectionRefusedError):
            await read_banner(device.host, down_port)
    assert await read_banner(fleet.devices[3].host, port) == b"ELVLAB lab-00004\r\n"

    await fleet.set_fault(device.id, "none")
    assert device.listening
    assert await read_banner(device.host, port) == f"ELVLAB {device.id}\r\n".encode()


async def test_slow_delays_banner_while_other_device_still_answers(fleet: LabFleet) -> None:
    delay = 1.0
    slow, fast = fleet.devices[0], fleet.devices[1]
    await fleet.set_fault(slow.id, "slow", delay)
    port = slow.ports[0]

    async def timed(device: LabDevice) -> tuple[bytes, float]:
        started = time.perf_counter()
        banner = await read_banner(device.host, port)
        return banner, time.perf_counter() - started

    (slow_banner, slow_took), (fast_banner, fast_took) = await asyncio.gather(
        timed(slow), timed(fast))
    assert slow_banner.startswith(b"ELVLAB") and fast_banner.startswith(b"ELVLAB")
    assert slow_took >= delay * 0.9
    assert fast_took < delay / 4
    assert fast_took < slow_took / 4


async def test_slow_answers_keep_their_order(fleet: LabFleet) -> None:
    device = fleet.devices[4]
    await device.set_fault(Fault.SLOW, 0.2)
    reader, writer = await asyncio.open_connection(device.host, device.ports[0])
    try:
        writer.write(b"a\nb\nc\n")
        await writer.drain()
        lines = [await asyncio.wait_for(reader.readline(), TIMEOUT) for _ in range(4)]
        assert lines == [device.banner, b"OK\r\n", b"OK\r\n", b"OK\r\n"]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_flaky_drops_every_other_connection(fleet: LabFleet) -> None:
    device = fleet.devices[1]
    await fleet.set_fault(device.id, Fault.FLAKY)
    banners = []
    for _ in range(4):
        with contextlib.suppress(ConnectionResetError):
            banners.append(await read_banner(device.host, device.ports[0]))
            continue
        banners.append(b"")
    assert banners == [b"", device.banner, b"", device.banner]


def test_fault_delay_must_be_sane() -> None:
    device = LabDevice("d1", "127.0.0.1", [1])
    for bad in (-1.0, float("nan"), float("inf"), 10_000.0):
        with pytest.raises(ValueError, match="delay"):
            asyncio.run(device.set_fault(Fault.SLOW, bad))
    with pytest.raises(ValueError, match="unknown fault"):
        asyncio.run(device.set_fault("broken"))


async def test_tcp_probe_sees_lab_banner_and_down_device(fleet: LabFleet) -> None:
    device = fleet.devices[0]
    target = Target(device=device.id, host=device.host)
    check = Check(name="tcp", type="tcp", port=device.ports[0], params={"expect": "ELVLAB"})
    assert (await probe_tcp(target, check)).status is Status.OK
    await device.set_fault(Fault.DOWN)
    observation = await probe_tcp(target, check)
    assert observation.status is Status.DOWN
    assert "refused" in (observation.error or "")


async def test_written_config_loads_as_elvwatch_include(tmp_path: Path) -> None:
    fleet = LabFleet(3, random_first(), (8554, 80), prefix="cam")
    write_config(tmp_path / "lab-devices.yaml", fleet, "lab", "camera", "both")
    (tmp_path / "elvwatch.yaml").write_text(
        "sites: [{id: lab, name: Lab}]\ninclude: [lab-devices.yaml]\n", encoding="utf-8")
    config = load_config(tmp_path / "elvwatch.yaml", environ={})
    assert sorted(config.devices) == ["cam-00001", "cam-00002", "cam-00003"]
    checks = config.devices["cam-00002"].checks
    assert [(c.type, c.port, dict(c.params)) for c in checks] == [
        ("icmp", None, {}), ("tcp", 8554, {"expect": "ELVLAB"})]
    assert config.devices["cam-00002"].target.host == fleet.devices[1].host
    assert fleet.config_devices("lab", "camera")[0].keys() == {"id", "site", "kind", "host"}
    assert lab_checks("tcp", 80) == [{"type": "tcp", "port": 80, "params": {"expect": "ELVLAB"}}]


async def test_control_api_lists_devices_and_switches_faults(fleet: LabFleet) -> None:
    control = ControlServer(fleet, "127.0.0.1", 0)
    url = await control.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/devices") as response:
                assert response.status == 200
                listed = (await response.json())["devices"]
            assert [d["id"] for d in listed] == [d.id for d in fleet]
            assert listed[0]["ports"] == list(fleet.ports)
            assert listed[0]["fault"] == "none"

            async with http.post(f"{url}/devices/lab-00002/fault",
                                 json={"fault": "slow", "delay": 2.5}) as response:
                assert response.status == 200
                assert (await response.json())["fault"] == "slow"
            assert fleet.device("lab-00002").fault is Fault.SLOW
            assert fleet.device("lab-00002").delay == 2.5

            async with http.post(f"{url}/devices/lab-00002/fault",
                                 json={"fault": "down"}) as response:
                assert response.status == 200
            with pytest.raises(ConnectionRefusedError):
                await read_banner(fleet.device("lab-00002").host, fleet.ports[0])
            async with http.post(f"{url}/devices/lab-00002/fault",
                                 json={"fault": "NONE"}) as response:
                assert (await response.json())["listening"] is True
    finally:
        await control.stop()


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "must be JSON"),
    (b"[1, 2]", "JSON object"),
    (b"{}", '"fault" is required'),
    (b'{"fault": "melted"}', "unknown fault 'melted'"),
    (b'{"fault": "slow", "delay": -1}', "delay must be between"),
    (b'{"fault": "slow", "delay": "soon"}', "delay must be a number"),
    (b'{"fault": "down", "when": "now"}', "unknown keys: when"),
])
async def test_control_api_rejects_bad_bodies(fleet: LabFleet, body: bytes,
                                              message: str) -> None:
    control = ControlServer(fleet, "127.0.0.1", 0)
    url = await control.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/devices/lab-00001/fault", data=body) as response:
                assert response.status == 400
                assert message in (await response.json())["error"]
            async with http.post(f"{url}/devices/nope/fault",
                                 json={"fault": "down"}) as response:
                assert response.status == 404
            async with http.get(f"{url}/devices/nope") as response:
                assert response.status == 404
    finally:
        await control.stop()
    assert fleet.device("lab-00001").fault is Fault.NONE


def test_control_refuses_non_loopback_addresses() -> None:
    fleet = LabFleet(1, random_first(), (8080,))
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            ControlServer(fleet, host, 0)
    assert require_loopback("::1") == "::1"


async def test_serve_prints_ready_line_serves_and_exits_cleanly_on_sigterm(
        tmp_path: Path) -> None:
    first, port = random_first(), random_port()
    config = tmp_path / "devices.yaml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "elvwatch.lab", "serve", "--count", "20", "--first", first,
        "--ports", f"{port},{port + 1}", "--control", "127.0.0.1:0",
        "--write-config", str(config), "--check", "tcp",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        found = re.match(r"lab ready: (http://127\.0\.0\.1:\d+) devices=20 ", line)
        assert found, line
        url = found.group(1)
        assert await read_banner(first, port + 1) == b"ELVLAB lab-00001\r\n"
        entries = yaml.safe_load(config.read_text(encoding="utf-8"))["devices"]
        assert len(entries) == 20
        assert entries[0]["checks"] == [{"type": "tcp", "port": port,
                                         "params": {"expect": "ELVLAB"}}]
        async with aiohttp.ClientSession() as http, http.post(
                f"{url}/devices/lab-00001/fault", json={"fault": "down"}) as response:
            assert response.status == 200
        with pytest.raises(ConnectionRefusedError):
            await read_banner(first, port)

        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
