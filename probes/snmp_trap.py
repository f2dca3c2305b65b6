"""The SNMP trap receiver: a push source turning traps into Observations.

One UDP listener (``sources.snmp_trap.listen``) accepts v1/v2c traps with the
configured communities and v3 traps/informs from the configured users.  A trap is
matched to the device whose address sent it (or, for v1, the agent address inside
it); the observation goes to that device's ``snmp_trap`` check:

* linkDown / linkUp → ``snmp_trap.link_up{ifindex="N"}`` 0 / 1 (status degraded on down)
* coldStart / warmStart → ``snmp_trap.rebooted`` 1
* authenticationFailure → ``snmp_trap.authentication_failure`` 1 (degraded)
* anything else → ``snmp_trap.vendor`` 1 with the trap OID in ``snmp_trap.oid``

Every observation carries ``snmp_trap.received`` (traps from that device since
start).  Traps from addresses no device has are counted (``unknown_sources``) and
logged — the first from each address, then every hundredth — never dropped silently.

v3 traps (not informs) are authenticated with the *sender's* engine ID, so a v3 user
for traps needs the sender's engine ID in its credential (setting ``engine_id``, hex);
without it only informs from that user are accepted.

States: STOPPED (no socket) → STARTED (listening) → STOPPED.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Status, Target, Value
from elvwatch.probes.snmp_session import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from elvwatch.probes.snmp_trap_options import SnmpTrapOptions, SnmpTrapSettings

with warnings.catch_warnings():  # see probes.snmp_session: pysmi deprecations
    warnings.simplefilter("ignore", DeprecationWarning)
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config as pysnmp_config
    from pysnmp.entity.engine import SnmpEngine
    from pysnmp.entity.rfc3413 import ntfrcv
    from pysnmp.proto import error as pysnmp_error
    from pysnmp.proto.rfc1902 import OctetString

log = logging.getLogger(__name__)

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)  # v1 agent-addr, as pysnmp maps it
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
GENERIC = (1, 3, 6, 1, 6, 3, 1, 1, 5)
COLD_START, WARM_START, LINK_DOWN, LINK_UP, AUTH_FAILURE = (
    (*GENERIC, n) for n in (1, 2, 3, 4, 5))
UNKNOWN_LOG_EVERY = 100
RESOLVE_TIMEOUT = 2.0


class ReceiverState(StrEnum):
    STOPPED = "stopped"  # no socket
    STARTED = "started"  # listening


class SnmpTrapReceiver:
    def __init__(self, settings: SnmpTrapSettings, credentials: Mapping[str, Credential],
                 emit: Callable[[Observation], None]) -> None:
        self.settings = settings
        self.credentials = credentials
        self.emit = emit
        self.state = ReceiverState.STOPPED
        self.unknown_sources: Counter[str] = Counter()
        self.received: Counter[str] = Counter()  # by device
        self._by_address: dict[str, tuple[Target, Check]] = {}
        self._engine: SnmpEngine | None = None
        self._receiver: ntfrcv.NotificationReceiver | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        host, _, port = self.settings.listen.rpartition(":")
        host = host.strip("[]")
        engine = SnmpEngine()
        # Bind ourselves: a port in use fails here, with the address in the error.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            sock.close()
            raise OSError(f"snmp_trap: cannot listen on {self.settings.listen}: {exc}") from exc
        sock.setblocking(False)
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        pysnmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        for index, community in enumerate(self.settings.communities):
            pysnmp_config.add_v1_system(engine, f"trap-community-{index}", community)
        for name in self.settings.v3_users:
            self._add_user(engine, name)
        self._receiver = ntfrcv.NotificationReceiver(engine, self._on_trap)
        self._engine = engine
        await transport._lport  # the endpoint exists once this is done
        self.address = sock.getsockname()[:2]
        self.state = ReceiverState.STARTED

    def _add_user(self, engine: SnmpEngine, name: str) -> None:
        credential = self.credentials.get(name)
        if credential is None or not credential.username:
            raise ValueError(f"snmp_trap: v3 user credential {name!r} not found or no username")
        auth_key = credential.secrets.get("auth_key")
        priv_key = credential.secrets.get("priv_key")
        settings = credential.settings
        auth = AUTH_PROTOCOLS[settings.get("auth_protocol", "sha" if auth_key else "none")]
        priv = PRIV_PROTOCOLS[settings.get("priv_protocol", "aes128" if priv_key else "none")]
        engine_id = settings.get("engine_id")
        pysnmp_config.add_v3_user(
            engine, credential.username, auth, auth_key.value if auth_key else None,
            priv, priv_key.value if priv_key else None,
            securityEngineId=OctetString(hexValue=engine_id.removeprefix("0x"))
            if engine_id else None)

    async def update(self, targets: Sequence[tuple[Target, Check]]) -> None:
        by_address: dict[str, tuple[Target, Check]] = {}
        for target, check in targets:
            options = check.options if isinstance(check.options, SnmpTrapOptions) else (
                SnmpTrapOptions.model_validate(dict(check.params)))
            for host in (target.host, *options.addresses):
                for address in await _addresses(host):
                    by_address[address] = (target, check)
        self._by_address = by_address

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            if self._receiver is not None:
                self._receiver.close(engine)
                self._receiver = None
            engine.close_dispatcher()
        self.state = ReceiverState.STOPPED

    def _on_trap(self, engine: SnmpEngine, state_reference: Any, _ctx_engine: Any,
                 _ctx_name: Any, var_binds: Any, _cb_ctx: Any) -> None:
        try:
            _, (source, _port) = engine.message_dispatcher.get_transport_info(state_reference)
        except pysnmp_error.ProtocolError:  # the dispatcher forgot the request
            source = "?"
        binds = {tuple(name): value for name, value in var_binds}
        agent = binds.get(SNMP_TRAP_ADDRESS)
        match = self._by_address.get(str(source))
        if match is None and agent is not None:
            match = self._by_address.get(agent.prettyPrint())
        if match is None:
            self.unknown_sources[str(source)] += 1
            count = self.unknown_sources[str(source)]
            if count == 1 or count % UNKNOWN_LOG_EVERY == 0:
                log.warning("SNMP trap from unknown source %s (%d so far)", source, count)
            return
        target, check = match
        self.received[target.device] += 1
        self.emit(self._observation(target, check, binds))

    def _observation(self, target: Target, check: Check,
                     binds: Mapping[tuple[int, ...], Any]) -> Observation:
        trap_oid = binds.get(SNMP_TRAP_OID)
        oid = tuple(trap_oid) if trap_oid is not None else ()
        values: dict[str, Value] = {"snmp_trap.received": float(self.received[target.device])}
        status, error = Status.OK, None
        if oid in (LINK_DOWN, LINK_UP):
            index = next((str(k[-1]) for k in binds if k[:len(IF_INDEX)] == IF_INDEX
                          and len(k) == len(IF_INDEX) + 1), "unknown")
            up = oid == LINK_UP
            values[labelled.join("snmp_trap.link_up", {"ifindex": index})] = 1.0 if up else 0.0
            if not up:
                status, error = Status.DEGRADED, f"link down trap (ifindex {index})"
        elif oid in (COLD_START, WARM_START):
            values["snmp_trap.rebooted"] = 1.0
        elif oid == AUTH_FAILURE:
            values["snmp_trap.authentication_failure"] = 1.0
            status, error = Status.DEGRADED, "authenticationFailure trap"
        else:
            values["snmp_trap.vendor"] = 1.0
        values["snmp_trap.oid"] = ".".join(map(str, oid)) or "unknown"
        return Observation(target.device, check.name, status, values=values, error=error,
                           latency=None, time=time.time())


async def _addresses(host: str) -> list[str]:
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, TimeoutError):
        log.warning("snmp_trap: cannot resolve %s; its traps will count as unknown", host)
        return []
    return sorted({str(info[4][0]) for info in infos})


def snmp_trap_source(settings: BaseModel | None, credentials: Mapping[str, Credential],
                     emit: Callable[[Observation], None]) -> SnmpTrapReceiver:
    """The PushFactory of the registry."""
    chosen = settings if isinstance(settings, SnmpTrapSettings) else SnmpTrapSettings()
    return SnmpTrapReceiver(chosen, credentials, emit)
