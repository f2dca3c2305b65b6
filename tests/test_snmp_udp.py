"""The v1/v2c path (our BER codec + shared UDP socket) against net-snmp: its answers
agree with net-snmp's own tools, v1 quirks are handled, and replies that do not
match a request are refused with a reason."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from elvwatch.probes import snmp_ber as ber
from elvwatch.probes import snmp_udp
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import Community, Session, close_engine
from tests.snmp_agents import COMMUNITY, Agent, relay, running_snmpd

SYS_DESCR, SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0)
IF_DESCR, IF_HC_IN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Agent]:
    with running_snmpd() as agent:
        yield agent


@pytest.fixture(autouse=True)
async def _sockets() -> AsyncIterator[None]:
    yield
    await close_engine()


def net_snmp(tool: str, agent: Agent, *args: str) -> str:
    result = subprocess.run([tool, "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-Oe", "-t", "2",
                             f"{agent.host}:{agent.port}", *args],
                            capture_output=True, text=True, timeout=20, check=True)
    return result.stdout


async def probe(agent: Agent, timeout: float = 5.0, **params: str) -> Observation:
    target = Target(device="dev", host=agent.host, kind="switch",
                    credential=Credential("c", secrets={"community": Secret(COMMUNITY)}))
    check = Check("snmp", "snmp", timeout=timeout, port=agent.port, params=params,
                  options=SnmpOptions.model_validate(params))
    return await probe_snmp(target, check)


async def test_get_answers_agree_with_net_snmp_snmpget(snmpd: Agent) -> None:
    family, address = await snmp_udp.resolve(snmpd.host, snmpd.port)
    outcome = await snmp_udp.exchange(family, address, ber.VERSION_2C, COMMUNITY.encode(),
                                      ber.GET, [SYS_DESCR, SYS_OBJECT_ID], 2.0, 0)
    assert outcome.message is not None
    (_, descr_tag, descr), (_, oid_tag, object_id) = outcome.message.varbinds
    theirs = net_snmp("snmpget", snmpd, ".1.3.6.1.2.1.1.1.0", ".1.3.6.1.2.1.1.2.0")
    their_descr, their_oid = (line.split(" ", 1)[1] for line in theirs.splitlines())
    assert (descr_tag, oid_tag) == (ber.OCTET_STRING, ber.OBJECT_ID)
    assert isinstance(descr, bytes) and descr.decode() == their_descr.strip('"')
    assert isinstance(object_id, tuple) and "." + ".".join(map(str, object_id)) == their_oid


async def test_bulk_walk_agrees_with_net_snmp_snmpbulkwalk(snmpd: Agent) -> None:
    session = await Session.open(snmpd.host, snmpd.port,
                                 Community(ber.VERSION_2C, COMMUNITY.encode()), "2c",
                                 budget_seconds=5.0, retries=0, max_repetitions=2)
    walked = await session.walk([IF_DESCR, IF_HC_IN], max_rows=100)
    theirs = {}
    for line in net_snmp("snmpbulkwalk", snmpd, ".1.3.6.1.2.1.2.2.1.2").splitlines():
        oid, _, value = line.partition(" ")
        theirs[(int(oid.rsplit(".", 1)[1]),)] = value.strip('"').encode()
    assert walked[IF_DESCR] == theirs and theirs
    # ifHCInOctets is a Counter64: decoded as a plain non-negative int.
    assert walked[IF_HC_IN] and all(isinstance(v, int) and v >= 0
                                    for v in walked[IF_HC_IN].values())
    assert session.requests >= 2  # max_repetitions=2 forced several GETBULKs


async def test_v1_agent_absent_oids_are_dropped_one_by_one(snmpd: Agent) -> None:
    # The switch kind asks vendor identification OIDs net-snmp does not have: a v1
    # agent fails the whole GET with noSuchName for each, and the walk ends with
    # noSuchName at the end of the MIB instead of endOfMibView.
    obs = await probe(snmpd, version="1")
    assert obs.status is Status.OK, obs.error
    assert obs.info["vendor"] == "net-snmp"
    assert obs.values["snmp.uptime_seconds"] >= 0
    assert obs.values["snmp.requests"] > 3
    assert any(k.startswith("snmp.if.oper_up{") for k in obs.values)


async def test_concurrent_checks_share_one_socket(snmpd: Agent) -> None:
    results = await asyncio.gather(*(probe(snmpd, profiles="system") for _ in range(40)))
    assert all(r.status is Status.OK for r in results), [r.error for r in results]
    endpoints = snmp_udp._ENDPOINTS[asyncio.get_running_loop()]
    assert len(endpoints) == 1


async def test_garbage_answers_are_named_in_the_timeout(snmpd: Agent) -> None:
    async with relay(snmpd, forward=0, garbage=True) as (agent, _):
        obs = await probe(agent, timeout=1.0)
    assert obs.status is Status.DOWN
    assert obs.error is not None
    assert obs.error.startswith("timeout: no valid response")
    assert "undecodable reply" in obs.error


class _WrongCommunity(asyncio.DatagramProtocol):
    """Answers every request correctly except for the community (a spoofed or
    misrouted reply): the client must not take it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = ber.decode_message(data)
        reply = ber.Message(request.version, b"other", ber.RESPONSE, request.request_id,
                            0, 0, tuple((o, ber.INTEGER, 1) for o, _, _ in request.varbinds))
        self.transport.sendto(ber.encode_message(reply), addr)


@contextlib.asynccontextmanager
async def wrong_community_peer() -> AsyncIterator[Agent]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _WrongCommunity, local_addr=("127.0.0.1", 0))
    try:
        yield Agent("127.0.0.1", transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


async def test_reply_with_another_community_is_refused() -> None:
    async with wrong_community_peer() as agent:
        obs = await probe(agent, timeout=1.0, profiles="system")
    assert obs.status is Status.DOWN
    assert obs.error is not None and "not matching the request" in obs.error
    assert COMMUNITY not in obs.error


async def test_retries_resend_within_the_check_timeout(snmpd: Agent) -> None:
    async with relay(snmpd, forward=0) as (agent, state):
        started = asyncio.get_running_loop().time()
        obs = await probe(agent, timeout=1.2, retries="2", profiles="system")
        elapsed = asyncio.get_running_loop().time() - started
    assert obs.status is Status.DOWN and obs.error is not None
    assert obs.error.startswith("timeout")
    assert state.requests == 3  # first try + 2 retries, same request
    assert elapsed < 1.2
