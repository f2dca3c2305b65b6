"""The SNMP trap receiver, fed by net-snmp's snmptrap (v2c and v3) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.registry import PUSH
from elvwatch.probes.snmp_trap import SnmpTrapReceiver
from elvwatch.probes.snmp_trap_options import SnmpTrapOptions, SnmpTrapSettings
from tests.helpers import until

COMMUNITY = "trap-community"
ENGINE_ID = "0x8000000001020304050607"
USER = "trapuser"
AUTH_KEY, PRIV_KEY = "trap-auth-key", "trap-priv-key"
WAIT = 5.0


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[SnmpTrapReceiver, list[Observation]]]:
    seen: list[Observation] = []
    credentials = {"trap-v3": Credential(
        "trap-v3", USER, secrets={"auth_key": Secret(AUTH_KEY), "priv_key": Secret(PRIV_KEY)},
        settings={"auth_protocol": "sha256", "priv_protocol": "aes128",
                  "engine_id": ENGINE_ID})}
    settings = SnmpTrapSettings(listen="127.0.0.1:0", communities=(COMMUNITY,),
                                v3_users=("trap-v3",))
    manager = PUSH["snmp_trap"].factory(settings, credentials, seen.append)
    assert isinstance(manager, SnmpTrapReceiver)
    await manager.start()
    target = Target(device="switch-1", host="127.0.0.1", kind="switch")
    await manager.update([(target, Check("traps", "snmp_trap",
                                         options=SnmpTrapOptions()))])
    try:
        yield manager, seen
    finally:
        await manager.stop()


async def send(receiver: SnmpTrapReceiver, *args: str) -> None:
    assert receiver.address is not None
    host, port = receiver.address
    proc = await asyncio.create_subprocess_exec(
        "snmptrap", *args[:-1], f"{host}:{port}",
        *("" if a == "''" else a for a in args[-1].split()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, output.decode()


async def wait_for(seen: list[Observation], count: int) -> None:
    await until(lambda: len(seen) >= count, f"{count} trap observation(s)", WAIT)


async def test_v2c_link_down_trap_reaches_the_device_observation_stream(
        receiver: tuple[SnmpTrapReceiver, list[Observation]]) -> None:
    manager, seen = receiver
    await send(manager, "-v", "2c", "-c", COMMUNITY,
               "'' 1.3.6.1.6.3.1.1.5.3 1.3.6.1.2.1.2.2.1.1.7 i 7")
    await wait_for(seen, 1)
    obs = seen[0]
    assert (obs.device, obs.check, obs.status) == ("switch-1", "traps", Status.DEGRADED)
    assert obs.values[labelled.join("snmp_trap.link_up", {"ifindex": "7"})] == 0.0
    assert obs.values["snmp_trap.received"] == 1.0


async def test_v3_authpriv_cold_start_trap_is_accepted(
        receiver: tuple[SnmpTrapReceiver, list[Observation]]) -> None:
    manager, seen = receiver
    await send(manager, "-v", "3", "-e", ENGINE_ID, "-u", USER, "-l", "authPriv",
               "-a", "SHA-256", "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY,
               "'' 1.3.6.1.6.3.1.1.5.1")
    await wait_for(seen, 1)
    assert seen[0].values["snmp_trap.rebooted"] == 1.0
    assert seen[0].status is Status.OK


async def test_trap_with_wrong_community_is_not_accepted(
        receiver: tuple[SnmpTrapReceiver, list[Observation]]) -> None:
    manager, seen = receiver
    await send(manager, "-v", "2c", "-c", "wrong", "'' 1.3.6.1.6.3.1.1.5.1")
    await send(manager, "-v", "2c", "-c", COMMUNITY, "'' 1.3.6.1.6.3.1.1.5.2")
    await wait_for(seen, 1)
    await asyncio.sleep(0.2)
    assert [o.values["snmp_trap.oid"] for o in seen] == ["1.3.6.1.6.3.1.1.5.2"]


async def test_trap_from_unknown_address_is_counted_not_emitted(
        receiver: tuple[SnmpTrapReceiver, list[Observation]]) -> None:
    manager, seen = receiver
    await send(manager, "-v", "2c", "-c", COMMUNITY, "--clientaddr=127.0.0.2",
               "'' 1.3.6.1.6.3.1.1.5.1")
    async with asyncio.timeout(WAIT):
        while not manager.unknown_sources:
            await asyncio.sleep(0.02)
    assert manager.unknown_sources == {"127.0.0.2": 1}
    assert seen == []
