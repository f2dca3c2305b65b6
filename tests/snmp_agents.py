"""Real SNMP peers for the tests: net-snmp ``snmpd`` with its own config on a free
loopback port, and a UDP relay that misbehaves in front of a real agent."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from elvwatch.lab.snmp import free_udp_port
from elvwatch.probes import snmp_ber as ber

COMMUNITY = "elv-test-community"
V3_USERS = {
    # user: (auth protocol for snmpd, auth key, priv protocol for snmpd, priv key)
    "elv-sha256-aes128": ("SHA-256", "auth-key-one", "AES", "priv-key-one"),
    "elv-sha512-aes256": ("SHA-512", "auth-key-two", "AES-256", "priv-key-two"),
    "elv-sha1-auth": ("SHA", "auth-key-three", None, None),
}
START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Agent:
    host: str
    port: int


def _ready(host: str, port: int) -> bool:
    result = subprocess.run(
        ["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.3", "-r", "0", "-On",
         f"{host}:{port}", "1.3.6.1.2.1.1.3.0"],
        capture_output=True, timeout=5, check=False)
    return result.returncode == 0


@contextlib.contextmanager
def running_snmpd(host: str = "127.0.0.1") -> Iterator[Agent]:
    if shutil.which("snmpd") is None:
        raise RuntimeError("snmpd not installed (apt-get install snmpd snmp)")
    workdir = Path(tempfile.mkdtemp(prefix="elvwatch-snmpd-"))
    port = free_udp_port(host)
    lines = [f"agentAddress udp:{host}:{port}", f"rocommunity {COMMUNITY} {host}"]
    for user, (auth, auth_key, priv, priv_key) in V3_USERS.items():
        if priv:
            lines += [f'createUser {user} {auth} "{auth_key}" {priv} "{priv_key}"',
                      f"rouser {user} priv"]
        else:
            lines += [f'createUser {user} {auth} "{auth_key}"', f"rouser {user} auth"]
    conf = workdir / "snmpd.conf"
    conf.write_text("\n".join(lines) + "\n", "utf-8")
    log = (workdir / "snmpd.log").open("wb")
    with log:
        # -C: only our config; -f: foreground; persistent state in our own dir.
        proc = subprocess.Popen(
            ["snmpd", "-f", "-C", "-c", str(conf), "-Lf", str(workdir / "agent.log"),
             "-p", str(workdir / "snmpd.pid"), "-M", "/nonexistent", "-m", ""],
            stdout=log, stderr=subprocess.STDOUT,
            env={"SNMP_PERSISTENT_DIR": str(workdir), "PATH": "/usr/sbin:/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("snmpd did not start: "
                                   + (workdir / "agent.log").read_text("utf-8", "replace"))
            time.sleep(0.1)
        yield Agent(host, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


class Relay(asyncio.DatagramProtocol):
    """Forwards datagrams to a real agent; after ``forward`` requests it either goes
    silent (an agent that stops mid-walk) or answers garbage bytes.  With
    ``max_varbinds`` it answers a GET asking for more with tooBig, as a small embedded
    agent whose answer would not fit its message size does."""

    def __init__(self, upstream: tuple[str, int], forward: int, garbage: bool,
                 max_varbinds: int | None = None) -> None:
        self.upstream = upstream
        self.left = forward
        self.garbage = garbage
        self.max_varbinds = max_varbinds
        self.too_big = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0
        self._pending: dict[int, tuple[str, int]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if addr == self.upstream:
            client = self._pending.pop(0, None)
            if client is not None:
                self.transport.sendto(data, client)
            return
        self.requests += 1
        if self.max_varbinds is not None:
            request = ber.decode_message(data)
            if request.pdu == ber.GET and len(request.varbinds) > self.max_varbinds:
                self.too_big += 1
                self.transport.sendto(ber.encode_message(ber.Message(
                    request.version, request.community, ber.RESPONSE, request.request_id,
                    1, 0, request.varbinds)), addr)  # error-status tooBig(1)
                return
        if self.left > 0:
            self.left -= 1
            self._pending[0] = addr
            self.transport.sendto(data, self.upstream)
        elif self.garbage:
            self.transport.sendto(b"\x30\x03\x02\x01" + bytes(range(40)), addr)


@contextlib.asynccontextmanager
async def relay(upstream: Agent, forward: int, garbage: bool = False,
                max_varbinds: int | None = None) -> AsyncIterator[tuple[Agent, Relay]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Relay((upstream.host, upstream.port), forward, garbage, max_varbinds),
        local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        yield Agent("127.0.0.1", port), protocol
    finally:
        transport.close()
