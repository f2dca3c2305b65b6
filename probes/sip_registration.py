"""Is a door station registered at its site's SIP server?  (check type ``sip_registration``)

The check runs on the door station's device entry but talks to the SIP *server*: it
sends OPTIONS for ``sip:<user>@<server>:<port>``.  A proxy/registrar routes such a
request by its location table: to the registered contact when the user is registered
(the station, or the proxy for it, answers 2xx), and with 404 Not Found or
480 Temporarily Unavailable when nobody is registered under that user.  So:

* 2xx                                   → ``sip.registered`` 1, ``ok``;
* a code in ``params.unregistered``     → ``sip.registered`` 0, ``degraded``
  (default 404, 480);
* any other final code (401/407 when the server challenges OPTIONS, 408, 5xx)
  → ``unknown`` with the code: we cannot tell, so no ``sip.registered`` value;
* no answer from the server              → ``unknown`` (the server's own checks say
  whether it is down; this check is about the station's registration).

Limit, said plainly: this needs a server that routes out-of-dialog OPTIONS by
registration (Kamailio, OpenSIPS and the proxies of most intercom systems do).  A PBX
that answers OPTIONS itself for any known extension (Asterisk PJSIP does) says 200
whether or not the station is registered; ask such a PBX through its own API instead.

The built-in rule ``intercom_unregistered`` (rules/builtin/intercom.yaml) reads
``sip.registered``.  Values also carry ``sip.status_code`` and ``sip.rtt_seconds``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.base import (
    Check,
    Observation,
    Reason,
    Status,
    Target,
    bounded,
    check_options,
)
from elvwatch.probes.network import network_failure
from elvwatch.probes.sip import DEADLINE_SHARE, DEFAULT_PORT, MalformedSip, SipOptions, exchange

# 404: no such user in the location table; 480: known user with no registered contact.
DEFAULT_UNREGISTERED = "404,480"
_USER = re.compile(r"^[A-Za-z0-9._~+-]{1,64}$")


class SipRegistrationOptions(BaseModel):
    """``params`` of a ``sip_registration`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(min_length=1, max_length=253,
                        description="host (name or IP) of the site's SIP server")
    # The SIP server's port.
    server_port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    user: str = Field(description="the station's SIP user / extension at the server")
    # udp or tcp, towards the server.
    transport: Literal["udp", "tcp"] = "udp"
    unregistered: str = Field(DEFAULT_UNREGISTERED,
                              description="final codes meaning 'not registered'")

    @field_validator("user", mode="before", json_schema_input_type=str | int)
    @classmethod
    def _extension_number(cls, value: object) -> object:
        # Extensions are numbers; YAML reads `user: 8101` as an int.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("user")
    @classmethod
    def _user_ok(cls, value: str) -> str:
        # It ends up in the request URI: the sip check's rule for users.
        if not _USER.match(value):
            raise ValueError("user is the station's extension: letters, digits and ._~+- "
                             "only")
        return value

    @field_validator("unregistered")
    @classmethod
    def _codes_ok(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.isdigit() or not 300 <= int(part) <= 699:
                raise ValueError(f"{part!r} is not a final SIP failure code (300-699)")
        return value

    @property
    def unregistered_codes(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.unregistered.split(",") if p.strip())




async def probe_sip_registration(target: Target, check: Check) -> Observation:
    options = check_options(check, SipRegistrationOptions)
    where = f"SIP server {options.server}:{options.server_port}"
    deadline = check.timeout * DEADLINE_SHARE
    started = time.perf_counter()

    def unknown(error: str, reason: Reason,
                values: dict[str, float | str] | None = None) -> Observation:
        return Observation(target.device, check.name, Status.UNKNOWN, values=values or {},
                           latency=time.perf_counter() - started, error=bounded(error),
                           reason=reason)

    try:
        async with asyncio.timeout(deadline):
            response = await exchange(options.server, options.server_port,
                                      SipOptions(transport=options.transport,
                                                 user=options.user))
    except TimeoutError:
        return unknown(f"{where} did not answer over {options.transport} within "
                       f"{deadline:.3g}s; registration unknown", Reason.TIMEOUT)
    except (OSError, asyncio.IncompleteReadError) as exc:
        failure = network_failure(exc)
        return unknown(f"{where}: {failure.text}; registration unknown", failure.reason)
    except MalformedSip as exc:
        return unknown(f"{where} sent a bad answer: {exc}", Reason.PROTOCOL)
    rtt = time.perf_counter() - started
    values: dict[str, float | str] = {"sip.status_code": float(response.code),
                                      "sip.rtt_seconds": rtt}
    answer = f"{response.code} {response.reason}".strip()
    if 200 <= response.code < 300:
        values["sip.registered"] = 1.0
        return Observation(target.device, check.name, Status.OK, values=values, latency=rtt)
    if response.code in options.unregistered_codes:
        values["sip.registered"] = 0.0
        return Observation(target.device, check.name, Status.DEGRADED, values=values,
                           latency=rtt, error=bounded(
                               f"{options.user} not registered at {where} ({answer})"))
    return unknown(f"{where} answered {answer} for {options.user}; registration unknown",
                   Reason.PROTOCOL, values)
