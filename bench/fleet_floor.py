"""The floor of ``bench/fleet_bench.py``: the same work per kind with nothing around it,
measured in the same run, as CPU seconds per operation.

* ICMP: ``fping -l`` over the cameras' addresses at the daemon's pace (its process's CPU);
* SNMP: the physical floor, as fping is for ICMP: one UDP socket sending the GET the
  daemon sends (encoded once, same request id for all) and taking the replies, not
  decoding them;
* Modbus: pymodbus's client alone, one connection per gateway, the map's reads;
* ONVIF: onvif-zeep-async alone, the probe's six SOAP exchanges on a client per poll,
  as the probe makes them: the library's ``update_xaddrs`` (clock, then GetServices),
  device information, profiles, a stream URI per profile; the probe's RTSP DESCRIBE
  (~1 ms) has no library to compare with and is left out;
* ONVIF light polls (``full_poll_seconds``): the library's pre-auth clock call on a new
  client (the DESCRIBE, again, left out);
* MQTT: aiomqtt alone, subscribed to the devices' topics, taking the messages.

Each but ICMP runs in this process at the daemon's rate for that kind (ONVIF at most
``ONVIF_RATE`` a second: a CPU figure needs no more, and a loaded box could not keep up),
for ``seconds``, started at evenly spaced moments with at most ``CONCURRENCY`` in flight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.daemon_window import cpu
from bench.fleet_lab import (
    COMMUNITY,
    MODBUS_PORT,
    ONVIF_PORT,
    PASSWORD,
    SNMP_PORT,
)

CONCURRENCY = 256
ONVIF_RATE = 10.0


async def paced(items: Sequence[Any], rate: float, seconds: float,
                op: Callable[[Any], Awaitable[None]]) -> tuple[int, float, int]:
    """Start ``op(item)`` ``rate`` times a second for ``seconds`` (items round-robin);
    (operations done, CPU seconds of this process, failures)."""
    limit = asyncio.Semaphore(CONCURRENCY)
    failures = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(item: Any) -> None:
        nonlocal failures
        async with limit:
            try:
                await asyncio.wait_for(op(item), 10)
            except Exception:
                failures += 1

    order = list(items)
    random.shuffle(order)
    total = max(1, int(rate * seconds))
    loop = asyncio.get_running_loop()
    begin, cpu0 = loop.time(), cpu()
    for index in range(total):
        due = begin + index / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        task = asyncio.create_task(one(order[index % len(order)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return total, cpu() - cpu0, failures


async def snmp_floor(hosts: Sequence[str], rate: float, seconds: float) -> float:
    from elvwatch.probes import snmp_ber as ber
    from elvwatch.probes.snmp_detect import SYSTEM

    request = ber.encode_request(1, COMMUNITY.encode(), 0xA0, 4242, list(SYSTEM))
    waiting: dict[str, asyncio.Future[None]] = {}

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
            future = waiting.pop(str(addr[0]), None)
            if future is not None and not future.done():
                future.set_result(None)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))

    async def get(host: str) -> None:
        future = waiting[host] = loop.create_future()
        transport.sendto(request, (host, SNMP_PORT))
        await asyncio.wait_for(future, 2)

    try:
        done, used, failed = await paced(hosts, rate, seconds, get)
    finally:
        transport.close()
    return _per_op("SNMP", done, used, failed)


async def modbus_floor(panels: Sequence[tuple[str, int]], rate: float,
                       seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    from elvwatch.probes.modbus_maps import load_profile, plan_reads

    blocks = plan_reads(load_profile("generic_alarm_panel"))
    clients: dict[str, AsyncModbusTcpClient] = {}
    locks: dict[str, asyncio.Lock] = {}
    for host in dict.fromkeys(h for h, _ in panels):
        clients[host] = AsyncModbusTcpClient(host, port=MODBUS_PORT, timeout=2, retries=0)
        locks[host] = asyncio.Lock()
        await clients[host].connect()

    async def poll(panel: tuple[str, int]) -> None:
        host, unit = panel
        async with locks[host]:          # one request in flight per gateway, as ours
            for block in blocks:
                read = {"holding": clients[host].read_holding_registers,
                        "input": clients[host].read_input_registers,
                        "coil": clients[host].read_coils,
                        "discrete": clients[host].read_discrete_inputs}[block.function]
                answer = await read(block.address, count=block.count, device_id=unit)
                if answer.isError():
                    raise RuntimeError("modbus exception")

    try:
        done, used, failed = await paced(panels, rate, seconds, poll)
    finally:
        for client in clients.values():
            client.close()
    return _per_op("Modbus", done, used, failed)


async def onvif_floor(hosts: Sequence[str], rate: float, seconds: float) -> float:
    import onvif

    from elvwatch.probes.onvif_wsdl import load_wsdls

    await load_wsdls()

    async def poll(host: str) -> None:
        camera = onvif.ONVIFCamera(host, ONVIF_PORT, "admin", PASSWORD, no_cache=True,
                                   adjust_time=True, nat_override=True)
        try:
            await camera.update_xaddrs()     # the library's clock + GetServices
            devicemgmt = await camera.create_devicemgmt_service()
            await devicemgmt.GetDeviceInformation()
            media = await camera.create_media_service()
            for profile in await media.GetProfiles():
                await media.GetStreamUri({"StreamSetup": {
                    "Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                    "ProfileToken": profile.token})
        finally:
            await camera.close()

    done, used, failed = await paced(hosts, min(rate, ONVIF_RATE), seconds, poll)
    return _per_op("ONVIF", done, used, failed)


async def onvif_light_floor(hosts: Sequence[str], rate: float, seconds: float) -> float:
    """The library's share of a light poll: the pre-auth clock call on a new client."""
    import onvif

    async def poll(host: str) -> None:
        camera = onvif.ONVIFCamera(host, ONVIF_PORT, "admin", PASSWORD, no_cache=True,
                                   adjust_time=False, nat_override=True)
        try:
            devicemgmt = await camera.create_devicemgmt_service()
            await devicemgmt.authless_GetSystemDateAndTime()
        finally:
            await camera.close()

    done, used, failed = await paced(hosts, min(rate, ONVIF_RATE), seconds, poll)
    return _per_op("ONVIF light", done, used, failed)


async def mqtt_floor(port: int, seconds: float) -> float:
    import aiomqtt

    received = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="fleet-floor") as client:
        await client.subscribe("fleet/#")
        cpu0 = cpu()

        async def take() -> None:
            nonlocal received
            async for _ in client.messages:
                received += 1

        with_timeout = asyncio.ensure_future(take())
        await asyncio.sleep(seconds)
        with_timeout.cancel()
        used = cpu() - cpu0
    return _per_op("MQTT", received, used, 0)


def _per_op(what: str, done: int, used: float, failed: int) -> float:
    if failed:
        print(f"# floor {what}: {failed} of {done} operations failed", flush=True)
    return used / max(done - failed, 1)


def icmp_floor(hosts: list[str], interval: float, seconds: float) -> float:
    import shutil

    from bench.icmp_bench import fping_run

    fping = shutil.which("fping")
    if fping is None:
        raise SystemExit("fping not found (apt-get install fping)")
    return fping_run(fping, hosts, interval, seconds)["cpu_per_1000"] / 1000
