"""SNMP requests: GET and bounded GETBULK/GETNEXT table walks, errors translated at
the boundary.  v1/v2c go through our own BER codec and UDP client (probes.snmp_ber,
probes.snmp_udp: pyasn1 cost ~70 % of a check's CPU); v3 (USM, crypto) through
pysnmp 7's asyncio API, one engine per event loop.

Errors (all ``SnmpError``, a ``ProbeError``)::

    SnmpError                 the agent could not be read; ``reason`` is one word
    ├── SnmpAddressError      reason "address": the host name does not resolve
    ├── SnmpAuthError         reason "authentication": unknown user, wrong key …
    └── SnmpTimeout           reason "timeout": no answer (v1/v2c: also a wrong
                              community, agents drop those silently)
"""

from __future__ import annotations

import asyncio
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

# pysnmp 7.1 imports pysmi names that pysmi >= 1.6 marks deprecated; the warning is
# theirs, not ours, and must not turn into an error under ``-W error``.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pysnmp.entity.rfc3413 import cmdgen
    from pysnmp.error import PySnmpError
    from pysnmp.hlapi.v3arch.asyncio import (
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
    )
    from pysnmp.hlapi.v3arch.asyncio import auth as _auth
    from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
    from pysnmp.proto import errind
    from pysnmp.proto.rfc1902 import Null, ObjectName
    from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from elvwatch.probes import snmp_ber as ber
from elvwatch.probes import snmp_udp
from elvwatch.probes.base import Credential, ProbeConfigError, ProbeError, Reason
from elvwatch.probes.snmp_ber import parse_oid as parse_oid  # its old home; snmp_ber has it now

# Every agent-side USM failure the engine reports; they all mean "the credentials
# do not match the device", which is what a user has to fix.
_AUTH_ERRORS = (errind.UnknownUserName, errind.WrongDigest, errind.DecryptionError,
                errind.AuthenticationError, errind.AuthenticationFailure,
                errind.UnknownSecurityName, errind.UnsupportedSecurityLevel,
                errind.NotInTimeWindow, errind.UnknownEngineID,
                errind.UnsupportedAuthProtocol, errind.UnsupportedPrivProtocol)

AUTH_PROTOCOLS = {
    "none": _auth.USM_AUTH_NONE,
    "md5": _auth.USM_AUTH_HMAC96_MD5,
    "sha": _auth.USM_AUTH_HMAC96_SHA,
    "sha1": _auth.USM_AUTH_HMAC96_SHA,
    "sha224": _auth.USM_AUTH_HMAC128_SHA224,
    "sha256": _auth.USM_AUTH_HMAC192_SHA256,
    "sha384": _auth.USM_AUTH_HMAC256_SHA384,
    "sha512": _auth.USM_AUTH_HMAC384_SHA512,
}
# AES-192/256 exist in two key-localisation variants: the draft-blumenthal one
# (net-snmp, most switches; "aes192"/"aes256") and the Cisco/"reeder" key extension
# ("aes192c"/"aes256c", pysnmp's plain CFB192/256).
PRIV_PROTOCOLS = {
    "none": _auth.USM_PRIV_NONE,
    "des": _auth.USM_PRIV_CBC56_DES,
    "3des": _auth.USM_PRIV_CBC168_3DES,
    "aes": _auth.USM_PRIV_CFB128_AES,
    "aes128": _auth.USM_PRIV_CFB128_AES,
    "aes192": _auth.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256": _auth.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "aes192c": _auth.USM_PRIV_CFB192_AES,
    "aes256c": _auth.USM_PRIV_CFB256_AES,
}

Oid = tuple[int, ...]


class SnmpError(ProbeError):
    reason = "error"  # starts the error text
    cause = Reason.PROTOCOL  # what rules match

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.reason}: {message}")


class SnmpAuthError(SnmpError):
    reason = "authentication"
    cause = Reason.AUTH


class SnmpTimeout(SnmpError):
    reason = "timeout"
    cause = Reason.TIMEOUT


class SnmpAddressError(SnmpError):
    reason = "address"
    cause = Reason.UNREACHABLE


@dataclass(frozen=True, slots=True)
class Community:
    """v1/v2c credentials; the community stays out of reprs and errors."""

    version: int  # snmp_ber.VERSION_1 / VERSION_2C
    name: bytes = field(repr=False)


class Missing:
    """An OID the agent does not have (noSuchObject/noSuchInstance/endOfMibView)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()
# endOfMibView in a walk's answers: ends that column (never stored as a value).
END_OF_MIB = Missing()
Raw = int | float | str | bytes | Oid | Missing


_ENGINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SnmpEngine] = (
    weakref.WeakKeyDictionary())


def engine() -> SnmpEngine:
    """The SnmpEngine of the running loop (one UDP socket shared by every check)."""
    loop = asyncio.get_running_loop()
    eng = _ENGINES.get(loop)
    if eng is None:
        eng = _ENGINES[loop] = SnmpEngine()
    return eng


async def close_engine() -> None:
    """Close the running loop's engine and sockets (the registry's close hook:
    daemon stop; test teardown)."""
    eng = _ENGINES.pop(asyncio.get_running_loop(), None)
    if eng is not None:
        eng.close_dispatcher()
    await snmp_udp.close_endpoints()


def auth_data(version: str, credential: Credential | None,
              community: str | None = None) -> Community | UsmUserData:
    """Auth data from a named credential (v3: pysnmp's, the secrets stay inside it)."""
    if version in ("1", "2c"):
        secret = credential.secrets.get("community") if credential else None
        name = community or (secret.value if secret else None) or (
            credential.password.value if credential and credential.password else None)
        if not name:
            raise ProbeConfigError("snmp", "v1/v2c needs a community (credential secret "
                                   "'community')")
        return Community(ber.VERSION_1 if version == "1" else ber.VERSION_2C,
                         name.encode("utf-8"))
    if credential is None or not credential.username:
        raise ProbeConfigError("snmp", "v3 needs a credential with a username")
    settings = credential.settings
    auth_key = credential.secrets.get("auth_key")
    priv_key = credential.secrets.get("priv_key")
    auth_name = settings.get("auth_protocol", "sha" if auth_key else "none").lower()
    priv_name = settings.get("priv_protocol", "aes128" if priv_key else "none").lower()
    if auth_name not in AUTH_PROTOCOLS or priv_name not in PRIV_PROTOCOLS:
        raise ProbeConfigError("snmp", f"unknown auth/priv protocol {auth_name}/{priv_name} "
                               f"(auth: {', '.join(AUTH_PROTOCOLS)}; priv: "
                               f"{', '.join(PRIV_PROTOCOLS)})")
    if (auth_name != "none") != (auth_key is not None) or (
            (priv_name != "none") != (priv_key is not None)):
        raise ProbeConfigError("snmp", "v3 auth/priv protocol and auth_key/priv_key secrets "
                               "must be given together")
    return UsmUserData(credential.username,
                       authKey=auth_key.value if auth_key else None,
                       privKey=priv_key.value if priv_key else None,
                       authProtocol=AUTH_PROTOCOLS[auth_name],
                       privProtocol=PRIV_PROTOCOLS[priv_name])


@dataclass(slots=True)
class Session:
    """One agent, one set of credentials; every request bounded by ``deadline``."""

    auth: Community | UsmUserData
    # v3: pysnmp's transport target; v1/v2c: (address family, (address, port)).
    transport: UdpTransportTarget | tuple[int, snmp_udp.Address]
    version: str
    deadline: float  # time.monotonic() after which no new request is sent
    max_repetitions: int = 25
    requests: int = 0
    diagnosis_deadline: float = 0.0  # budget kept for diagnose_timeout
    per_request: float = 1.0
    retries: int = 0
    rejected: str | None = None  # why the agent's last datagram was dropped (v1/v2c)

    @classmethod
    async def open(cls, host: str, port: int, auth: Community | UsmUserData,
                   version: str, budget_seconds: float, retries: int,
                   max_repetitions: int = 25) -> Session:
        now = time.monotonic()
        # v3 authPriv keeps a third of the budget to tell a wrong priv key from a dead
        # agent (see diagnose_timeout).
        encrypted = isinstance(auth, UsmUserData) and auth.security_level == "authPriv"
        budget = budget_seconds * (2 / 3) if encrypted else budget_seconds
        # The per-request timeout leaves room for the retries inside the budget.
        per_request = max(0.2, budget / (retries + 1))
        transport: UdpTransportTarget | tuple[int, snmp_udp.Address]
        try:
            if isinstance(auth, Community):
                transport = await snmp_udp.resolve(host, port)
            else:
                transport = await UdpTransportTarget.create(
                    (host, port), timeout=per_request, retries=retries)
        except (PySnmpError, snmp_udp.UdpAddressError) as exc:
            raise SnmpAddressError(str(exc)) from None
        return cls(auth, transport, version, now + budget, max_repetitions,
                   diagnosis_deadline=now + budget_seconds, per_request=per_request,
                   retries=retries)

    def _check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            raise SnmpTimeout("check time used up before the walk ended")

    def _raise_for(self, reply: Reply) -> None:
        indication = reply.indication
        if indication:
            if isinstance(indication, _AUTH_ERRORS):
                raise SnmpAuthError(str(indication))
            if isinstance(indication, errind.RequestTimedOut):
                raise SnmpTimeout(self._no_response())
            raise SnmpError(str(indication))
        if reply.status and reply.status != NO_SUCH_NAME:  # callers handle noSuchName
            raise SnmpError(f"agent error-status {reply.status} at varbind {reply.index}")

    async def get(self, oids: Sequence[Oid]) -> dict[Oid, Raw]:
        """GET ``oids``; absent ones map to MISSING.  v1 agents fail the whole PDU for
        one absent OID (noSuchName), so those are dropped one by one and re-asked."""
        wanted = list(oids)
        out: dict[Oid, Raw] = {}
        while wanted:
            self._check_time()
            self.requests += 1
            reply = await self._send(_GET, wanted)
            if (not reply.indication and reply.status == NO_SUCH_NAME
                    and 0 < reply.index <= len(wanted)):
                out[wanted.pop(reply.index - 1)] = MISSING
                continue
            if not reply.indication and reply.status == TOO_BIG and len(wanted) > 1:
                # Small embedded agents refuse answers over their message size: ask
                # in halves (bounded: each split halves the list, and time is checked).
                half = len(wanted) // 2
                out.update(await self.get(wanted[:half]))
                out.update(await self.get(wanted[half:]))
                break
            self._raise_for(reply)
            for oid, value in reply.binds:
                out[oid] = MISSING if value is END_OF_MIB else value
            for oid in wanted:
                out.setdefault(oid, MISSING)
            break
        return out

    async def walk(self, columns: Sequence[Oid], max_rows: int,
                   limits: Mapping[Oid, int] | None = None) -> dict[Oid, dict[Oid, Raw]]:
        """Walk table ``columns`` side by side: {column: {index suffix: value}}.

        Bounded three ways: rows (``max_rows`` per column, or the column's own entry in
        ``limits``), time (``deadline``) and order (an agent returning a
        non-increasing OID ends the walk with an error instead of looping)."""
        result: dict[Oid, dict[Oid, Raw]] = {c: {} for c in columns}
        cursor = {c: c for c in columns}
        active = list(columns)
        while active:
            self._check_time()
            self.requests += 1
            binds = await self._next_rows([cursor[c] for c in active], max_rows)
            width = len(active)
            finished: set[Oid] = set()
            for pos, (oid, value) in enumerate(binds):
                column = active[pos % width]
                if column in finished:
                    continue
                if value is END_OF_MIB or oid[:len(column)] != column:
                    finished.add(column)
                    continue
                if oid <= cursor[column]:
                    raise SnmpError(f"agent returned a non-increasing OID after "
                                    f"{'.'.join(map(str, cursor[column]))}")
                cursor[column] = oid
                rows = result[column]
                rows[oid[len(column):]] = value
                if len(rows) >= (limits.get(column, max_rows) if limits else max_rows):
                    finished.add(column)
            if not binds:
                break
            active = [c for c in active if c not in finished]
        return result

    async def _next_rows(self, oids: list[Oid], max_rows: int) -> list[tuple[Oid, Raw]]:
        if self.version == "1":
            reply = await self._send(_NEXT, oids)
            if not reply.indication and reply.status == NO_SUCH_NAME:
                return []  # v1 end of MIB
        else:
            reps = max(1, min(self.max_repetitions, max_rows))
            reply = await self._send(_BULK, oids, reps)
        self._raise_for(reply)
        return reply.binds

    async def _send(self, generator: Any, oids: Sequence[Oid],
                    repetitions: int = 0) -> Reply:
        if isinstance(self.auth, Community):
            return await self._send_community(self.auth, generator, oids, repetitions)
        return await self._send_usm(generator, oids, repetitions)

    async def _send_community(self, auth: Community, generator: Any, oids: Sequence[Oid],
                              repetitions: int) -> Reply:
        assert isinstance(self.transport, tuple)
        family, address = self.transport
        pdu = ber.GET if generator is _GET else ber.GET_NEXT if generator is _NEXT else (
            ber.GET_BULK)
        # Never wait past the check's deadline, whatever the retries say.
        left = self.deadline - time.monotonic()
        tries = max(1, min(self.retries + 1, int(left / self.per_request + 0.999)))
        per_try = min(self.per_request, left / tries) if left > 0 else 0.0
        outcome = await snmp_udp.exchange(family, address, auth.version, auth.name, pdu,
                                          list(oids), per_try, tries - 1, repetitions)
        message = outcome.message
        if message is None:
            self.rejected = outcome.rejected
            return Reply(_TIMED_OUT, 0, 0, [])
        return Reply(None, message.error_status, message.error_index,
                     [(oid, _plain(tag, value)) for oid, tag, value in message.varbinds])

    async def _send_usm(self, generator: Any, oids: Sequence[Oid],
                        repetitions: int = 0) -> Reply:
        """One request through pysnmp's command generators with raw OIDs: the hlapi
        helpers resolve every OID against MIBs first, which costs milliseconds per
        OID (and, with pysmi installed, tries to attach a MIB compiler)."""
        eng = engine()
        assert isinstance(self.auth, UsmUserData)
        assert isinstance(self.transport, UdpTransportTarget)
        addr_name, _ = LCD.configure(eng, self.auth, self.transport, b"")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(_engine: object, _handle: object, indication: object, status: Any,
                 index: Any, binds: Any, _ctx: object) -> None:
            if not future.done():
                future.set_result(Reply(indication, int(status or 0), int(index or 0),
                                        [(tuple(b[0]), convert(b[1])) for b in binds or ()]))

        binds = [(ObjectName(o), Null("")) for o in oids]
        if generator is _BULK:
            _BULK.send_varbinds(eng, addr_name, None, b"", 0, repetitions, binds, done)
        else:
            generator.send_varbinds(eng, addr_name, None, b"", binds, done)
        # pysnmp's own timer covers one request; v3 discovery adds requests of its own,
        # so the check's deadline is enforced here too.
        try:
            async with asyncio.timeout(max(0.0, self.deadline - time.monotonic())):
                return await future
        except TimeoutError:
            raise SnmpTimeout(self._no_response()) from None

    def _no_response(self) -> str:
        if self.rejected:
            return f"no valid response (the agent's last datagram: {self.rejected})"
        hint = " (wrong community, or no agent)" if self.version != "3" else ""
        return f"no response{hint}"

    async def diagnose_timeout(self) -> None:
        """After a v3 authPriv timeout: ask once without privacy.  An agent that
        answers that (data, or a report refusing the level) is alive and knows the
        user — so the encrypted requests it ignored carry a wrong priv key/protocol."""
        auth = self.auth
        if not isinstance(auth, UsmUserData) or auth.security_level != "authPriv":
            return
        # Same user without privacy: pysnmp re-keys its USM entry for it, and back
        # on the next normal run (only on this failure path).
        plain = UsmUserData(auth.userName, authKey=auth.authentication_key,
                            authProtocol=auth.authentication_protocol)
        probe = Session(plain, self.transport, self.version, self.diagnosis_deadline)
        try:
            await probe.get([(1, 3, 6, 1, 2, 1, 1, 3, 0)])
        except SnmpTimeout:
            return  # silent either way: nothing more to learn
        except SnmpError:
            pass  # an error *answer* (authorizationError, a report): alive, knows us
        raise SnmpAuthError("the agent answers authenticated requests but not encrypted "
                            "ones: wrong priv key or priv protocol")


_GET = cmdgen.GetCommandGenerator()
_NEXT = cmdgen.NextCommandGenerator()
_BULK = cmdgen.BulkCommandGenerator()
TOO_BIG, NO_SUCH_NAME = 1, 2  # error-status


@dataclass(frozen=True, slots=True)
class Reply:
    indication: object  # a pysnmp ErrorIndication, or None
    status: int
    index: int
    binds: list[tuple[Oid, Raw]]  # END_OF_MIB marks endOfMibView


_TIMED_OUT = errind.RequestTimedOut()


def _plain(tag: int, value: ber.BerValue) -> Raw:
    if value is None:
        return END_OF_MIB if tag == ber.END_OF_MIB_VIEW else MISSING
    return value


def convert(value: object) -> Raw:
    """A pysnmp value as a plain Python value (MISSING for the exception values)."""
    if isinstance(value, EndOfMibView):
        return END_OF_MIB
    if isinstance(value, NoSuchObject | NoSuchInstance):
        return MISSING
    tag = type(value).__name__
    pysnmp_value = cast(Any, value)
    if tag == "ObjectIdentifier":
        return tuple(int(p) for p in pysnmp_value)
    if tag in ("OctetString", "DisplayString", "Opaque", "IpAddress", "Bits"):
        return bytes(pysnmp_value.asOctets())
    if tag == "Null":
        return MISSING
    try:
        return int(pysnmp_value)
    except (TypeError, ValueError):
        return str(value)
