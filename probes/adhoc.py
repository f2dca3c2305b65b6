"""Ad-hoc targets given as URLs (``elvwatch probe URL``, ``/probe?target=URL``).

Schemes so far: ``icmp://HOST``, ``tcp://HOST:PORT`` and
``mqtt://HOST:PORT/TOPIC-FILTER``.  Secrets never appear in a
URL: protocols that need them take them from a stored credential the caller chose
(``credential``: the daemon's /probe hands a configured device's own, see
web/probe_access.py) or, for a person at the command line, from the environment
variables docs/commands.md names (``env``; the daemon passes none: its environment is not
for whoever can reach /probe).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target, worst
from elvwatch.probes.modbus import release as release_modbus
from elvwatch.probes.modbus_options import ModbusOptions
from elvwatch.probes.mqtt import MqttCheckOptions, MqttSettings
from elvwatch.probes.onvif_options import OnvifOptions
from elvwatch.probes.registry import PUSH
from elvwatch.probes.rtsp import RtspOptions
from elvwatch.probes.runner import run_check
from elvwatch.probes.sip import SipOptions
from elvwatch.probes.snmp_options import SnmpOptions

DEFAULT_TIMEOUT = 5.0
# Ad-hoc checks that cannot finish in less: an ONVIF poll is a chain of SOAP calls
# (clock, device info, services, profiles, stream URIs, an RTSP DESCRIBE), and its
# first use parses the WSDLs.  A shorter timeout is refused rather than quietly raised.
MIN_TIMEOUTS = {"onvif": 10.0}
MIN_TIMEOUT_WHY = {"onvif": "a chain of up to eight requests and, on first use, "
                            "parsing the WSDLs"}


class UsageError(ValueError):
    """The URL cannot be probed; the message says why."""


class TimeoutTooShort(UsageError):
    """The time given is less than the scheme needs; ``needed`` says how much it does."""

    def __init__(self, scheme: str, given: float, needed: float) -> None:
        super().__init__(f"{scheme}:// needs a timeout of at least {needed:g}s "
                         f"({MIN_TIMEOUT_WHY.get(scheme, 'its exchange')}); "
                         f"{given:g}s is too short")
        self.scheme, self.given, self.needed = scheme, given, needed


@dataclass(frozen=True, slots=True)
class AdhocTarget:
    url: str
    kind: str
    target: Target
    checks: tuple[Check, ...]
    plan: AdhocPlan | None = None


@dataclass(frozen=True, slots=True)
class UrlParts:
    """A parsed ad-hoc URL, handed to the scheme's builder."""

    url: str
    scheme: str
    host: str
    port: int | None
    username: str | None
    path: str
    query: Mapping[str, str]
    timeout: float
    # Where secrets come from: a stored credential chosen by the caller, else these
    # environment variables (only the command line passes any).
    credential: Credential | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdhocPlan:
    """What a scheme's builder returns: the checks to run, and for push sources the
    settings of their manager and how long to listen."""

    checks: tuple[Check, ...]
    credential: Credential | None = None
    push_settings: BaseModel | None = None
    listen_seconds: float = 0.0


AdhocBuilder = Callable[[UrlParts], AdhocPlan]


def _icmp(parts: UrlParts) -> AdhocPlan:
    count = _int(parts, "count", 1)
    return AdhocPlan((Check("icmp", "icmp", timeout=parts.timeout, params={"count": count}),))


def _tcp(parts: UrlParts) -> AdhocPlan:
    if parts.port is None:
        raise UsageError(f"{parts.url!r}: tcp:// needs a port, e.g. tcp://{parts.host}:554")
    params = {k: v for k, v in parts.query.items() if k in ("send", "expect")}
    return AdhocPlan((Check(f"tcp_{parts.port}", "tcp", timeout=parts.timeout, port=parts.port,
                            params=params),))


MQTT_PASSWORD_ENV = "ELVWATCH_MQTT_PASSWORD"
MQTT_PARAMS = ("profile", "key", "json_path", "value", "availability_topic", "max_age",
               "expect_seconds")


def _mqtt(parts: UrlParts) -> AdhocPlan:
    """``mqtt://[USER@]HOST[:PORT]/TOPIC-FILTER?profile=NAME&listen=SECONDS`` (also key,
    json_path, value, max_age, expect_seconds, tls=1).  A profile's expected topics are
    checked within the listen time (by 60 % of it unless expect_seconds).  A ``#`` in
    the filter is written ``%23``: a bare one would start the URL fragment.  The
    password comes from ELVWATCH_MQTT_PASSWORD."""
    topic = parts.path.lstrip("/")
    if not topic:
        raise UsageError(f"{parts.url!r}: give a topic filter, e.g. "
                         f"mqtt://{parts.host}:1883/zigbee2mqtt/door_3?profile=zigbee2mqtt")
    try:
        listen = float(parts.query.get("listen", 10))
    except ValueError:
        raise UsageError(f"{parts.url!r}: listen must be a number of seconds") from None
    if not 0 < listen <= 3600:
        raise UsageError(f"{parts.url!r}: listen must be between 0 and 3600 seconds")
    params = {"broker": "adhoc", "topic": topic, "expect_seconds": str(max(0.5, listen * 0.6)),
              **{k: v for k, v in parts.query.items() if k in MQTT_PARAMS}}
    tls = parts.query.get("tls", "0").lower() in ("1", "true", "yes")
    credential = parts.credential
    if credential is None and parts.username:
        password = parts.env.get(MQTT_PASSWORD_ENV)
        credential = Credential("adhoc", parts.username,
                                Secret(password) if password is not None else None)
    broker = {"host": parts.host, "port": parts.port, "tls": tls,
              "credentials": credential.name if credential else None}
    try:
        options = MqttCheckOptions.model_validate(params)
        # A short listen needs the freshness sweep (and the expected-topics window
        # it closes) to run often.
        settings = MqttSettings.model_validate({"brokers": {"adhoc": broker},
                                                "sweep_seconds": 0.25})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}"
                             for e in exc.errors())
        raise UsageError(f"{parts.url!r}: {problems}") from None
    check = Check("mqtt", "mqtt", interval=max(listen, 1.0), timeout=min(listen, 5.0),
                  params=params, options=options)
    return AdhocPlan((check,), credential=credential, push_settings=settings,
                     listen_seconds=listen)


def _validated(parts: UrlParts, model: type[BaseModel], params: dict[str, str]) -> BaseModel:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}"
                             for e in exc.errors())
        raise UsageError(f"{parts.url!r}: {problems}") from None


def _modbus(parts: UrlParts) -> AdhocPlan:
    """``modbus://HOST[:PORT]?unit=1&profile=NAME`` (port 502 by default)."""
    if "profile" not in parts.query:
        raise UsageError(f"{parts.url!r}: name a register map, e.g. "
                         f"modbus://{parts.host}:502?unit=1&profile=generic_alarm_panel")
    params = {k: v for k, v in parts.query.items() if k in ("unit", "profile")}
    options = _validated(parts, ModbusOptions, params)
    port = parts.port or 502
    return AdhocPlan((Check(f"modbus_{port}", "modbus", timeout=parts.timeout, port=port,
                            params=params, options=options),))


def _sip(parts: UrlParts) -> AdhocPlan:
    """``sip://HOST[:PORT]?transport=udp|tcp`` (also user, expect; port 5060 by default)."""
    params = {k: v for k, v in parts.query.items() if k in ("transport", "user", "expect")}
    options = _validated(parts, SipOptions, params)
    port = parts.port or 5060
    return AdhocPlan((Check(f"sip_{port}", "sip", timeout=parts.timeout, port=port,
                            params=params, options=options),))


SNMP_COMMUNITY_ENV = "ELVWATCH_SNMP_COMMUNITY"
SNMP_AUTH_KEY_ENV = "ELVWATCH_SNMP_AUTH_KEY"
SNMP_PRIV_KEY_ENV = "ELVWATCH_SNMP_PRIV_KEY"
SNMP_PARAMS = ("profiles", "retries", "max_rows", "max_repetitions")


def _snmp(parts: UrlParts) -> AdhocPlan:
    """``snmp://[COMMUNITY@]HOST[:PORT]?version=1|2c&kind=KIND&profiles=a,b`` (port 161;
    without a user part the community comes from ELVWATCH_SNMP_COMMUNITY) and
    ``snmpv3://USER@HOST[:PORT]?auth=sha256&priv=aes128`` (keys from
    ELVWATCH_SNMP_AUTH_KEY / ELVWATCH_SNMP_PRIV_KEY)."""
    params: dict[str, str] = {k: v for k, v in parts.query.items() if k in SNMP_PARAMS}
    if parts.scheme == "snmpv3" and parts.credential is not None:
        params["version"] = "3"
        credential = parts.credential
    elif parts.scheme == "snmpv3":
        if not parts.username:
            raise UsageError(f"{parts.url!r}: snmpv3:// needs a user, e.g. "
                             f"snmpv3://monitor@{parts.host}?auth=sha256&priv=aes128")
        params["version"] = "3"
        secrets: dict[str, Secret] = {}
        settings: dict[str, str] = {}
        for key, env, setting in (("auth", SNMP_AUTH_KEY_ENV, "auth_protocol"),
                                  ("priv", SNMP_PRIV_KEY_ENV, "priv_protocol")):
            protocol = parts.query.get(key, "none").lower()
            settings[setting] = protocol
            if protocol != "none":
                value = parts.env.get(env)
                if not value:
                    raise UsageError(f"{parts.url!r}: {key}={protocol} needs the key in {env}")
                secrets[f"{key}_key"] = Secret(value)
        credential = Credential("adhoc", parts.username, secrets=secrets, settings=settings)
    else:
        params["version"] = parts.query.get("version", "2c")
        community = parts.username or parts.env.get(SNMP_COMMUNITY_ENV)
        if community:
            credential = Credential("adhoc", secrets={"community": Secret(community)})
        elif parts.credential is not None:
            credential = parts.credential
        else:
            raise UsageError(f"{parts.url!r}: give the community as snmp://COMMUNITY@"
                             f"{parts.host} or in {SNMP_COMMUNITY_ENV}")
    options = _validated(parts, SnmpOptions, params)
    port = parts.port or 161
    return AdhocPlan((Check("snmp", "snmp", timeout=parts.timeout, port=port, params=params,
                            options=options),), credential=credential)


# One builder per URL scheme; protocol modules add theirs here.
ONVIF_PASSWORD_ENV = "ELVWATCH_ONVIF_PASSWORD"
RTSP_PASSWORD_ENV = "ELVWATCH_RTSP_PASSWORD"
ONVIF_FLAGS = ("stream", "snapshot", "adjust_time")


def _camera_credential(parts: UrlParts, env: str) -> Credential | None:
    if parts.credential is not None:
        return parts.credential
    if not parts.username:
        return None
    password = parts.env.get(env)
    return Credential("adhoc", parts.username,
                      Secret(password) if password is not None else None)


def _onvif(parts: UrlParts) -> AdhocPlan:
    """``onvif://USER@HOST[:PORT]?snapshot=1&stream=0`` (password from
    ELVWATCH_ONVIF_PASSWORD; without USER only the pre-auth clock is read)."""
    params: dict[str, object] = {k: parts.query[k].lower() in ("1", "true", "yes")
                                 for k in ONVIF_FLAGS if k in parts.query}
    try:
        options = OnvifOptions.model_validate(params)
    except ValidationError as exc:
        raise UsageError(f"{parts.url!r}: {exc.errors()[0]['msg']}") from None
    check = Check("onvif", "onvif", timeout=parts.timeout,
                  port=parts.port or 80, options=options)
    return AdhocPlan((check,), credential=_camera_credential(parts, ONVIF_PASSWORD_ENV))


def _rtsp(parts: UrlParts) -> AdhocPlan:
    """``rtsp://USER@HOST[:PORT]/PATH`` (password from ELVWATCH_RTSP_PASSWORD)."""
    # Dahua-style paths carry their channel in the query (?channel=1&subtype=0).
    query = {k: v for k, v in parts.query.items() if k != "kind"}
    path = (parts.path or "/") + (f"?{urlencode(query)}" if query else "")
    check = Check("rtsp", "rtsp", timeout=parts.timeout, port=parts.port or 554,
                  params={"path": path}, options=RtspOptions(path=path))
    return AdhocPlan((check,), credential=_camera_credential(parts, RTSP_PASSWORD_ENV))


SCHEMES: dict[str, AdhocBuilder] = {
    "icmp": _icmp,
    "tcp": _tcp,
    "mqtt": _mqtt,
    "modbus": _modbus,
    "sip": _sip,
    "snmp": _snmp,
    "snmpv3": _snmp,
    "onvif": _onvif,
    "rtsp": _rtsp,
}


def _int(parts: UrlParts, key: str, default: int) -> int:
    try:
        return int(parts.query.get(key, default))
    except ValueError:
        raise UsageError(f"{parts.url!r}: {key} must be a whole number") from None


def parse_target(url: str, kind: str | None = None, timeout: float | None = None, *,
                 credential: Credential | None = None,
                 env: Mapping[str, str] | None = None) -> AdhocTarget:
    """``url`` as a target and its checks.  ``timeout``: None for the scheme's default;
    one below what the scheme needs is refused (:class:`TimeoutTooShort`).
    ``credential``: a stored one to use; ``env``: environment variables to read secrets
    from (the command line passes ``os.environ``; nothing else should)."""
    shown = shown_url(url)
    try:
        split = urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"{shown!r}: {exc}") from None
    scheme = split.scheme.lower()
    if not scheme or not split.hostname:
        raise UsageError(f"{shown!r}: expected SCHEME://HOST[:PORT], e.g. tcp://127.0.0.1:554")
    if split.password:
        raise UsageError("put no password in the URL; the documentation (docs/commands.md) "
                         "names the environment variable each protocol reads it from")
    builder = SCHEMES.get(scheme)
    if builder is None:
        raise UsageError(f"{shown!r}: unknown scheme {scheme!r} (known: "
                         f"{', '.join(sorted(SCHEMES))})")
    try:
        port = split.port
    except ValueError as exc:
        raise UsageError(f"{shown!r}: {exc}") from None
    needed = MIN_TIMEOUTS.get(scheme, 0.0)
    if timeout is None:
        timeout = max(DEFAULT_TIMEOUT, needed)
    elif timeout < needed:
        raise TimeoutTooShort(scheme, timeout, needed)
    query = dict(parse_qsl(split.query))
    parts = UrlParts(url=shown, scheme=scheme, host=split.hostname, port=port,
                     username=unquote(split.username) if split.username else None,
                     path=unquote(split.path), query=query, timeout=timeout,
                     credential=credential, env=env or {})
    plan = builder(parts)
    label_kind = kind or query.get("kind", "adhoc")
    target = Target(device=_redacted(split), host=split.hostname, kind=label_kind,
                    credential=plan.credential)
    return AdhocTarget(shown, label_kind, target, plan.checks, plan)


# Schemes whose URL user part is itself a secret (an SNMP community).
_SECRET_USER = ("snmp",)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)@")


def shown_url(url: str) -> str:
    """``url`` fit to print and to quote in errors: the user part replaced by *** where
    it is a secret (snmp://COMMUNITY@HOST) or the scheme is not known to say."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    scheme = match.group(1).lower()
    if scheme in SCHEMES and scheme not in _SECRET_USER and ":" not in match.group(2):
        return url
    return f"{match.group(1)}://***@{url[match.end():]}"


def _redacted(split: SplitResult) -> str:
    # The device name is shown and exported: keep it free of query secrets.
    # An SNMP community given as the URL's user part is a secret too.
    netloc = split.netloc.rpartition("@")[2] if split.scheme.lower() == "snmp" else split.netloc
    return urlunsplit((split.scheme, netloc, split.path, "", ""))


async def probe_all(target: Target, checks: tuple[Check, ...],
                    plan: AdhocPlan | None = None) -> list[Observation]:
    """Run every check of one target now, concurrently.

    Push checks (MQTT, traps, events) start their source's manager for this target
    alone, listen for ``plan.listen_seconds`` and return what arrived (the last
    observation per check)."""
    pull = [c for c in checks if c.type not in PUSH]
    push = [c for c in checks if c.type in PUSH]
    results = list(await asyncio.gather(*(run_check(target, c) for c in pull)))
    for check in pull:
        if check.type == "modbus":  # pooled for the daemon; an ad-hoc run closes its own
            await release_modbus(target.host, check.port)
    if push:
        results += await _listen(target, push, plan)
    return results


async def _listen(target: Target, checks: list[Check],
                  plan: AdhocPlan | None) -> list[Observation]:
    latest: dict[str, Observation] = {}

    def emit(obs: Observation) -> None:
        latest[obs.check] = obs

    seconds = plan.listen_seconds if plan else DEFAULT_TIMEOUT
    credentials = {target.credential.name: target.credential} if target.credential else {}
    for check_type in sorted({c.type for c in checks}):
        manager = PUSH[check_type].factory(plan.push_settings if plan else None, credentials,
                                           emit)
        await manager.start()
        try:
            await manager.update([(target, c) for c in checks if c.type == check_type])
            await asyncio.sleep(seconds)
        finally:
            await manager.stop()
    return [latest.get(c.name) or Observation(target.device, c.name, Status.UNKNOWN,
                                              error=f"nothing received in {seconds:g}s")
            for c in checks]


# Identification some probes add (SNMP): shown when present, after the four above.
INFO_EXTRAS = ("kind", "stack_members", "members", "profiles")


def probe_result(device: str, kind: str, observations: list[Observation]) -> dict[str, object]:
    """The stable JSON object of ``elvwatch probe --json``."""
    info: dict[str, str | None] = dict.fromkeys(("vendor", "model", "firmware", "serial"))
    for obs in observations:
        for key in (*info, *INFO_EXTRAS):
            if obs.info.get(key):
                info[key] = obs.info[key]
    return {
        "device": device,
        "kind": kind,
        "status": worst([o.status for o in observations]).value if observations
        else Status.UNKNOWN.value,
        "info": info,
        "observations": [
            {k: v for k, v in o.as_dict().items() if k != "time"} for o in observations],
    }
