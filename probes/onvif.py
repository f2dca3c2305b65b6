"""ONVIF camera/NVR probe on onvif-zeep-async: identity, clock, profiles, stream, snapshot.

One poll: GetSystemDateAndTime (pre-auth; gives ``onvif.clock_offset_seconds``, camera
minus daemon, and the skew WS-UsernameToken timestamps are adjusted by), then with
the credentials GetDeviceInformation (→ ``info``), GetServices (GetCapabilities on old
firmware), GetProfiles, GetStreamUri per profile, an RTSP DESCRIBE of the first
profile's stream, when configured the snapshot (``probes.snapshot``), and on devices
with the Recording service the recording jobs' state (``probes.onvif_recording``).

Why a client per poll rather than per camera: a kept client costs ~86 KB and three
aiohttp sessions per camera, and must be closed on stop and reload; a per-poll one costs
~20 ms of CPU (the WSDLs are parsed once per process by the library and shared) and
holds nothing between polls, so stop and reload have nothing to leak.

Every URL the camera advertises is re-pointed at the configured host (``nat_override``):
device-sent addresses are untrusted and often wrong (NAT, a second NIC), and a probe
must never talk to hosts nobody configured.

Light polls (``full_poll_seconds``): between full polls a poll reads the clock and
DESCRIBEs the stream the last full poll found (no authenticated SOAP), and reports the
full poll's other values and identity again; anything wrong, or the time up, and the
next poll is full.  Identity, profile and recording changes then show at the full
poll's cadence; stream, reachability and clock at every poll.

Login protection: after an authentication failure the camera's credentials are not
used again for ``hold_off_seconds`` (cameras lock accounts after a few failures); the
check reports ``down`` with an error starting "authentication", and meanwhile only the
pre-auth clock call is made.  A changed password (reload) is tried at once.

Errors start with a reason word: unreachable, authentication, malformed, truncated,
too large (an answer over ``max_answer_bytes``), no stream, protocol.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from elvwatch.probes.base import (
    Check,
    Observation,
    Reason,
    Status,
    Target,
    Value,
    bounded,
    down,
)
from elvwatch.probes.memory import memory_of_run
from elvwatch.probes.onvif_client import (
    OnvifFailure,
    call,
    classify,
    close_camera,
    discover_services,
    new_camera,
    reset_devicemgmt,
    serialize,
)
from elvwatch.probes.onvif_clock import camera_utc, clock_offset
from elvwatch.probes.onvif_options import OnvifOptions
from elvwatch.probes.onvif_recording import recording_values
from elvwatch.probes.rtsp import RtspError, describe, split_rtsp_uri, stream_values
from elvwatch.probes.sharing import every_loose, shared
from elvwatch.probes.snapshot import judge_jpeg

RECORDING_NS = "http://www.onvif.org/ver10/recording/wsdl"
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"


# Starts each problem that leaves the camera without a stream (the check is then down).
NO_STREAM = "no stream"


class Holds(dict[str, float]):
    """Credential key → monotonic time its hold-off ends; one per daemon (the pull
    probe and the events source share it, probes/sharing.py)."""


class OnvifMemory:
    """What a check keeps from its last healthy full poll for the light polls after it
    (probes/memory.py): when it was, the stream it found, its other values and info."""

    __slots__ = ("at", "info", "stream_uri", "values")

    def __init__(self) -> None:
        self.at = 0.0
        self.stream_uri: str | None = None
        self.values: dict[str, Value] = {}
        self.info: dict[str, str] = {}

    def usable(self, options: OnvifOptions, now: float) -> bool:
        return bool(options.full_poll_seconds and options.stream and not options.snapshot
                    and self.stream_uri and now - self.at < options.full_poll_seconds)

    def keep(self, now: float, uri: str, values: Mapping[str, Value],
             info: Mapping[str, str]) -> None:
        self.at, self.stream_uri, self.info = now, uri, dict(info)
        # The clock and the stream are read again by every light poll.
        self.values = {k: v for k, v in values.items()
                       if not k.startswith(("onvif.clock", "onvif.stream"))}

    def forget(self) -> None:
        self.stream_uri = None
        self.values, self.info = {}, {}


def _hold_key(host: str, port: int, username: str | None, password: str | None) -> str:
    # A digest, so a changed password makes a new key and is tried at once.
    raw = f"{host}\0{port}\0{username}\0{password}".encode()
    return hashlib.sha256(raw).hexdigest()


def held_for(host: str, port: int, username: str | None, password: str | None) -> float:
    """Seconds the hold-off of these credentials still runs (0 when none)."""
    key = _hold_key(host, port, username, password)
    held = shared().get(Holds)
    remaining = held.get(key, 0.0) - time.monotonic()
    if remaining <= 0:
        held.pop(key, None)
        return 0.0
    return remaining


def hold_off(host: str, port: int, username: str | None, password: str | None,
             seconds: float) -> None:
    """Keep these credentials away from the camera for ``seconds`` (shared by the pull
    probe and the events source: either one failing to log in protects both)."""
    shared().get(Holds)[_hold_key(host, port, username, password)] = \
        time.monotonic() + seconds


def clear_hold_offs() -> None:
    """Forget the hold-offs of runs outside a daemon (tests start each from none)."""
    for loose in every_loose():
        held = loose.find(Holds)
        if held is not None:
            held.clear()


async def probe_onvif(target: Target, check: Check) -> Observation:
    options = check.options if isinstance(check.options, OnvifOptions) else OnvifOptions()
    port = check.port or options.port or target.ports.get("onvif") or 80
    cred = target.credential
    user = cred.username if cred else None
    password = cred.password.value if cred and cred.password else None
    started = time.perf_counter()
    values: dict[str, Value] = {}
    info: dict[str, str] = {}
    problems: list[str] = []
    memory = memory_of_run().get(OnvifMemory)
    light = user is not None and memory.usable(options, time.monotonic())
    camera = new_camera(target.host, port, user, password, device=target.device,
                        max_answer_bytes=options.max_answer_bytes)
    try:
        offset = await _clock(camera, values)
        held = held_for(target.host, port, user, password) if user else 0.0
        if held:
            memory.forget()
            values["onvif.auth_hold_seconds"] = round(held)
            return down(target, check, "authentication failed earlier; credentials not "
                        f"retried for another {held:.0f}s", time.perf_counter() - started,
                        values, reason=Reason.AUTH)
        if light and memory.stream_uri:
            values.update(memory.values)
            info.update(memory.info)
            await _stream(target, memory.stream_uri, user, password, values, problems)
        elif user is not None:
            if offset is not None and options.adjust_time:
                camera.dt_diff = dt.timedelta(seconds=offset)
                await reset_devicemgmt(camera)
            await _identify(camera, info, values)
            uri = await _media(target, camera, options, user, password, values, problems)
            if options.recording and RECORDING_NS in camera.xaddrs:
                await recording_values(camera, values, problems)
            if uri and not problems and options.full_poll_seconds:
                memory.keep(time.monotonic(), uri, values, info)
    except OnvifFailure as exc:
        memory.forget()
        if exc.reason is Reason.AUTH and user and options.hold_off_seconds:
            hold_off(target.host, port, user, password, options.hold_off_seconds)
        return _with_info(down(target, check, str(exc), time.perf_counter() - started,
                               values, reason=exc.reason), info)
    finally:
        await close_camera(camera)
    latency = time.perf_counter() - started
    offset_value = values.get("onvif.clock_offset_seconds")
    if isinstance(offset_value, float) and abs(offset_value) > options.max_clock_offset_seconds:
        problems.append(f"clock: camera is {offset_value:+.0f}s off the daemon's clock")
    status, reason = Status.OK, None
    if problems:
        memory.forget()           # the next poll looks at everything again
    if any(p.startswith(NO_STREAM) for p in problems):
        status, reason = Status.DOWN, Reason.NO_STREAM
    elif problems:
        status = Status.DEGRADED
    return Observation(target.device, check.name, status, values=values, latency=latency,
                       error=bounded("; ".join(problems)) if problems else None, info=info,
                       reason=reason)


def _with_info(obs: Observation, info: Mapping[str, str]) -> Observation:
    if not info:
        return obs
    return dataclasses.replace(obs, info=dict(info))


async def _clock(camera: Any, values: dict[str, Value]) -> float | None:
    """The camera's clock offset (also stored in ``values``); None when unreadable."""
    devicemgmt = await _call(camera.create_devicemgmt_service())
    sent = time.time()
    answer = serialize(await _call(devicemgmt.authless_GetSystemDateAndTime()))
    received = time.time()
    when, how = camera_utc(answer)
    if when is None:
        values["onvif.clock"] = bounded(how, 80)
        return None
    offset = clock_offset(when, sent, received)
    values["onvif.clock_offset_seconds"] = round(offset, 1)
    return offset


async def _identify(camera: Any, info: dict[str, str], values: dict[str, Value]) -> None:
    devicemgmt = await _call(camera.create_devicemgmt_service())
    device = serialize(await _call(devicemgmt.GetDeviceInformation()))
    for key, field in (("vendor", "Manufacturer"), ("model", "Model"),
                       ("firmware", "FirmwareVersion"), ("serial", "SerialNumber")):
        text = device.get(field)
        if isinstance(text, str) and text.strip():
            info[key] = bounded(text, 128)
    await discover_services(camera, devicemgmt)
    values["onvif.events_supported"] = float(EVENTS_NS in camera.xaddrs)
    values["onvif.recording_supported"] = float(RECORDING_NS in camera.xaddrs)


async def _media(target: Target, camera: Any, options: OnvifOptions, user: str | None,
                 password: str | None, values: dict[str, Value],
                 problems: list[str]) -> str | None:
    """Profiles, their stream URIs, the first one's stream (and snapshot); returns the
    first stream URI."""
    media = await _call(camera.create_media_service())
    profiles = [serialize(p) for p in await _call(media.GetProfiles()) or []]
    values["onvif.profiles"] = float(len(profiles))
    if not profiles:
        problems.append(f"{NO_STREAM}: the camera has no media profiles")
        return None
    first_uri: str | None = None
    for number, profile in enumerate(profiles[: options.max_profiles], 1):
        token = str(profile.get("token") or "")
        prefix = f"onvif.profile{number}"
        values[f"{prefix}.token"] = bounded(token, 64)
        encoder = profile.get("VideoEncoderConfiguration")
        if isinstance(encoder, Mapping):
            values[f"{prefix}.encoding"] = bounded(str(encoder.get("Encoding") or ""), 16)
            size = encoder.get("Resolution")
            if isinstance(size, Mapping) and size.get("Width") and size.get("Height"):
                values[f"{prefix}.width"] = float(size["Width"])
                values[f"{prefix}.height"] = float(size["Height"])
        request = {"StreamSetup": {"Stream": "RTP-Unicast",
                                   "Transport": {"Protocol": options.stream_transport}},
                   "ProfileToken": token}
        try:
            uri = _uri(serialize(await _call(media.GetStreamUri(request))))
        except OnvifFailure as exc:
            if exc.final:
                raise
            problems.append(f"{NO_STREAM}: GetStreamUri of profile {number}: {exc}")
            return None
        values[f"{prefix}.stream_uri"] = redact(uri)
        first_uri = first_uri or uri
    if options.stream and first_uri:
        await _stream(target, first_uri, user, password, values, problems)
    if options.snapshot:
        token = str(profiles[0].get("token") or "")
        await _snapshot(camera, media, token, options, user, password, values, problems)
    return first_uri


async def _stream(target: Target, uri: str, user: str | None, password: str | None,
                  values: dict[str, Value], problems: list[str]) -> None:
    try:
        port, path = split_rtsp_uri(uri)
    except ValueError as exc:
        problems.append(f"{NO_STREAM}: {exc}")
        values["onvif.stream_up"] = 0.0
        return
    host = f"[{target.host}]" if ":" in target.host else target.host
    url = f"rtsp://{host}:{port}{path}"
    try:
        found = await describe(target.host, port, url, user, password)
    except RtspError as exc:
        values["onvif.stream_up"] = 0.0
        problems.append(f"{NO_STREAM}: {exc}")
        return
    values["onvif.stream_up"] = float(found.video is not None)
    values.update(stream_values(found, "onvif.stream"))
    if found.video is None:
        problems.append(f"{NO_STREAM}: the SDP has no video")


async def _snapshot(camera: Any, media: Any, token: str, options: OnvifOptions,
                    user: str | None, password: str | None, values: dict[str, Value],
                    problems: list[str]) -> None:
    values["onvif.snapshot_ok"] = 0.0
    try:
        answer = serialize(await _call(media.GetSnapshotUri({"ProfileToken": token})))
        uri = camera.rewrite_url(_uri(answer))
    except OnvifFailure as exc:
        problems.append(f"snapshot: GetSnapshotUri: {exc}")
        return
    values["onvif.snapshot_uri"] = redact(uri)
    try:
        data = await fetch_bounded(uri, user, password, options.max_snapshot_bytes)
    except OnvifFailure as exc:
        problems.append(f"snapshot: {exc}")
        return
    verdict = judge_jpeg(data, options.snapshot_width, options.snapshot_height)
    values["onvif.snapshot_bytes"] = float(len(data))
    if verdict.width:
        values["onvif.snapshot_width"] = float(verdict.width)
        values["onvif.snapshot_height"] = float(verdict.height)
        values["onvif.snapshot_stddev"] = round(verdict.stddev, 2)
    if verdict.ok:
        values["onvif.snapshot_ok"] = 1.0
    else:
        problems.append(f"snapshot: {verdict.problem}")


async def fetch_bounded(uri: str, user: str | None, password: str | None,
                        limit: int) -> bytes:
    """GET with digest auth, reading at most ``limit`` bytes."""
    middlewares = (aiohttp.DigestAuthMiddleware(user, password or ""),) if user else ()
    async with aiohttp.ClientSession(middlewares=middlewares) as session:
        try:
            async with session.get(uri, allow_redirects=False) as response:
                if response.status in (401, 403):
                    raise OnvifFailure("authentication", f"snapshot answered {response.status}")
                if response.status != 200:
                    raise OnvifFailure("protocol", f"snapshot answered {response.status}")
                data = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > limit:
                        raise OnvifFailure("protocol", f"snapshot larger than {limit} bytes")
                return bytes(data)
        except aiohttp.ClientError as exc:
            raise (classify(exc) or OnvifFailure("protocol", type(exc).__name__)) from exc


def _uri(answer: Mapping[str, object]) -> str:
    uri = answer.get("Uri")
    if not isinstance(uri, str) or not uri.strip():
        raise OnvifFailure("malformed", "the answer has no Uri")
    return uri.strip()


def redact(uri: str) -> str:
    """The URI without user:password (some cameras put them in their stream URIs)."""
    split = urlsplit(uri)
    netloc = split.netloc.rsplit("@", 1)[-1]
    return bounded(urlunsplit((split.scheme, netloc, split.path, split.query, "")), 200)


_call = call       # shared with the events source (probes.onvif_client)
