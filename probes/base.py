"""Value types shared by every probe, and the probe error tree.

Every pull probe is one coroutine with one signature::

    async def probe_<protocol>(target: Target, check: Check) -> Observation

A device failing is data, not an exception: the probe returns an Observation with
``status=Status.DOWN``, a typed ``reason`` (what rules match) and an ``error`` text (what
people read).  The caller (the scheduler) owns the
timeout; a probe never waits unbounded.  Only bugs raise.

Errors::

    ProbeError                  base of every error a probe module raises on purpose
    ├── ProbeConfigError        the check's parameters cannot work (bad port, bad URL)
    └── ProbeProtocolError      the device answered something we cannot parse
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Value = float | str

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Status(StrEnum):
    """Result of one check, and the state of a device built from its checks."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"

    @property
    def badness(self) -> int:
        """Order used to pick the worst status: ok < unknown < degraded < down."""
        return _BADNESS[self]


_BADNESS = {Status.OK: 0, Status.UNKNOWN: 1, Status.DEGRADED: 2, Status.DOWN: 3}


def worst(statuses: list[Status]) -> Status:
    """The worst of ``statuses`` (``unknown`` for an empty list)."""
    if not statuses:
        return Status.UNKNOWN
    return max(statuses, key=lambda s: s.badness)


class Reason(StrEnum):
    """Why a check failed, in the few words rules match (``reason == "auth"``); the
    Observation's ``error`` says the rest in a person's words."""

    REFUSED = "refused"          # the connection was refused: nothing listens there
    TIMEOUT = "timeout"          # no answer in time
    UNREACHABLE = "unreachable"  # no route, host down, a name that does not resolve
    CLOSED = "closed"            # the device closed or reset the connection mid-exchange
    AUTH = "auth"                # the device refused the credentials
    NO_STREAM = "no_stream"      # a camera with no video stream to open
    PROTOCOL = "protocol"        # an answer that cannot be used (malformed, wrong, too big)
    STALE = "stale"              # a push source heard nothing for longer than allowed
    OFFLINE = "offline"          # the device says it is offline (MQTT availability)
    CONFIG = "config"            # the check's parameters cannot work
    CRASH = "crash"              # a bug in the probe


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value that never prints itself."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Credential:
    """A named login, resolved from the environment or a file at config load."""

    name: str
    username: str | None = None
    password: Secret | None = None
    # Further secrets by name (SNMPv3 auth_key/priv_key, a community, a token).
    secrets: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    # Non-secret settings by name (SNMPv3 auth_protocol, priv_protocol, …).
    settings: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Target:
    """What a probe talks to: a host and the labels that identify the device."""

    device: str
    host: str
    site: str = ""
    system: str = ""
    kind: str = ""
    credential: Credential | None = None
    ports: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a device: which probe, how often, how long it may take."""

    name: str
    type: str
    interval: float = 60.0
    timeout: float = 5.0
    port: int | None = None
    params: Mapping[str, Value | bool] = field(default_factory=lambda: MappingProxyType({}))
    # ``params`` validated by the probe's options model at config load (see registry).
    options: object | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one run of one check saw.

    ``values`` are named numbers or short strings (``icmp.rtt_seconds``); ``info``
    carries identification the device told us (vendor, model, firmware, serial) —
    untrusted text, already bounded in size by the probe.
    """

    device: str
    check: str
    status: Status
    values: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    latency: float | None = None
    error: str | None = None
    time: float = field(default_factory=time.time)
    info: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # Why it failed (None when it did not, or a device reported the fault itself).
    reason: Reason | None = None

    def as_dict(self) -> dict[str, object]:
        """The stable JSON shape used by ``elvwatch probe --json`` and the API."""
        return {
            "check": self.check,
            "status": self.status.value,
            "values": dict(self.values),
            "latency_seconds": self.latency,
            "error": self.error,
            "time": self.time,
        }


Prober = Callable[[Target, Check], Awaitable[Observation]]

MAX_TEXT = 256


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """Device-sent text, cut to ``limit`` characters with control characters removed."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text[: limit * 2])
    cleaned = cleaned.strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class ProbeError(Exception):
    """Base of the errors probe modules raise on purpose."""


class ProbeConfigError(ProbeError):
    """The check's parameters cannot work."""

    def __init__(self, check_type: str, message: str) -> None:
        super().__init__(f"{check_type}: {message}")
        self.check_type = check_type


class ProbeProtocolError(ProbeError):
    """The device answered something that cannot be parsed."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device


def down(target: Target, check: Check, error: str, latency: float | None = None,
         values: Mapping[str, Value] | None = None, *,
         reason: Reason | None = None) -> Observation:
    """Shorthand for a failed check."""
    return Observation(target.device, check.name, Status.DOWN,
                       values=values or {}, latency=latency, error=bounded(error),
                       reason=reason)


OptionsModel = TypeVar("OptionsModel", bound=BaseModel)


def check_options(check: Check, model: type[OptionsModel]) -> OptionsModel:
    """The check's params as its probe's options model: validated at config load, and
    here for checks built in code (ad-hoc URLs, tests); a bad one names the param."""
    if isinstance(check.options, model):
        return check.options
    try:
        return model.model_validate(dict(check.params))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProbeConfigError(check.type, f"params.{'.'.join(map(str, first['loc']))}: "
                                           f"{first['msg']}") from None
