"""The boundary with onvif-zeep-async: building/closing a client, errors, results.

Everything library-typed stays here and in ``probes.onvif``; what leaves is plain
dicts, strings and :class:`OnvifFailure`.

Library behaviours worked around here:

* its import runs ``logging.basicConfig(level=INFO)``; we import it lazily, after the
  daemon configured logging (then basicConfig is a no-op), and quieten its loggers;
* its constructor pops ``http_proxy``/``https_proxy`` from ``os.environ`` (harmless
  for us: cameras are on the LAN and we never use a proxy) — we restore them;
* zeep's on-disk SQLite cache is not used (``no_cache``): the WSDLs are bundled;
* its transport reads a whole answer into memory (``response.read()``) before anyone
  can look at its size: every service's transport gets a :class:`CappedSession` in
  place of its aiohttp session, which reads the answer itself, in chunks, and stops
  at ``max_answer_bytes`` (a ``Content-Length`` above it is refused before the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from elvwatch.probes.base import ProbeError, Reason, bounded
from elvwatch.probes.network import CONNECTION, network_failure, reason_of
from elvwatch.probes.onvif_options import MAX_ANSWER_BYTES

_AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "authority failure",
               "authentication")
_READ_CHUNK = 65536
# close_camera waits this long for a service build a timed-out poll left running (it
# parses WSDLs, no network): long enough for a loaded machine, bounded for a stop.
BUILD_WAIT_SECONDS = 10.0


class OnvifFailure(ProbeError):
    """One ONVIF exchange failed: ``word`` starts the error text, ``reason`` says why in
    the words rules match (from ``word`` unless given)."""

    def __init__(self, word: str, detail: str, reason: Reason | None = None) -> None:
        super().__init__(f"{word}: {bounded(detail, 160)}" if detail else word)
        self.word = word
        self.reason = reason_of(word) if reason is None else reason

    @property
    def final(self) -> bool:
        """Whether further calls to the device are pointless: it refused the login, or
        it cannot be reached."""
        return self.reason is Reason.AUTH or self.reason in CONNECTION


def _library() -> Any:
    import onvif

    for name in ("onvif", "zeep", "zeep.client", "zeep.wsdl", "zeep.xsd", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return onvif


def new_camera(host: str, port: int, user: str | None, password: str | None, *,
               device: str | None = None, max_answer_bytes: int = MAX_ANSWER_BYTES) -> Any:
    """A library client whose every service reads at most ``max_answer_bytes`` per
    answer; ``device`` (else host:port) names the camera in that error."""
    onvif = _library()
    proxies = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
    try:
        camera = onvif.ONVIFCamera(host, port, user, password, no_cache=True,
                                   adjust_time=False, nat_override=True)
    finally:
        os.environ.update(proxies)
    label = device or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    create = camera.create_onvif_service
    building: set[asyncio.Future[Any]] = set()

    # Every create_*_service of the library goes through create_onvif_service; the
    # instance attribute wraps it so each service it builds (or reuses) is capped.
    # The library opens a service's aiohttp session before its (slow, WSDL-parsing)
    # setup and lists the service in ``camera.services`` only after it: a poll that
    # timed out in between would orphan the session.  So the build runs on in a task
    # of its own, and close_camera waits for it before closing what it built.
    async def create_capped(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.ensure_future(create(*args, **kwargs))
        building.add(task)
        task.add_done_callback(_forget_build)
        task.add_done_callback(building.discard)
        service = await asyncio.shield(task)
        cap_answers(service.transport, label, max_answer_bytes)
        return service

    camera.create_onvif_service = create_capped
    camera.elvwatch_building = building
    return camera


def _forget_build(task: asyncio.Future[Any]) -> None:
    # Its failure was raised to the poll that asked, unless that poll was cancelled.
    if not task.cancelled():
        task.exception()


def cap_answers(transport: Any, device: str, limit: int) -> None:
    """Put a :class:`CappedSession` in place of the transport's aiohttp session (the
    session the library's transport is built around and posts every request with)."""
    session = getattr(transport, "session", None)
    if isinstance(session, CappedSession):
        return
    if not isinstance(session, aiohttp.ClientSession):
        # A library update moved its HTTP session: fail loudly (the tests see it)
        # rather than read unbounded answers.
        raise RuntimeError("onvif-zeep-async's transport has no aiohttp session to cap")
    transport.session = CappedSession(session, device, limit)


class CappedSession:
    """The aiohttp session of one service's transport, with every answer read here:
    in chunks, counting, and no further than ``limit`` bytes.  Requests, timeouts and
    the connection pool are the wrapped session's."""

    def __init__(self, session: aiohttp.ClientSession, device: str, limit: int) -> None:
        self.wrapped, self.device, self.limit = session, device, limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    async def post(self, *args: Any, **kwargs: Any) -> ReadAnswer:
        return await self._read(await self.wrapped.post(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> ReadAnswer:
        return await self._read(await self.wrapped.get(*args, **kwargs))

    async def _read(self, response: aiohttp.ClientResponse) -> ReadAnswer:
        try:
            announced = response.content_length
            if announced is not None and announced > self.limit:
                raise self._too_large(f"it announced {announced} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(_READ_CHUNK):
                body += chunk
                if len(body) > self.limit:
                    raise self._too_large(f"stopped reading after {len(body)} bytes")
        except BaseException:
            response.close()       # drops the connection: the rest is never read
            raise
        response.release()
        return ReadAnswer(response, bytes(body))

    def _too_large(self, detail: str) -> OnvifFailure:
        return OnvifFailure("too large", f"{self.device} sent an answer over the "
                                         f"{self.limit}-byte limit (max_answer_bytes); "
                                         f"{detail}")


class ReadAnswer:
    """An aiohttp response whose body was read by :class:`CappedSession`: ``read()``
    returns it, everything else (status, headers, charset …) is the response's."""

    def __init__(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        self.response, self.body = response, body

    def __getattr__(self, name: str) -> Any:
        return getattr(self.response, name)

    async def read(self) -> bytes:
        return self.body


async def close_camera(camera: Any) -> None:
    """Close every HTTP session of the client, services still being built included;
    never raises (it runs in finally).  Shielded: a second cancellation of the caller
    does not stop the closing."""
    with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
        await asyncio.shield(_close(camera))


async def _close(camera: Any) -> None:
    building = list(getattr(camera, "elvwatch_building", ()))
    if building:
        await asyncio.wait(building, timeout=BUILD_WAIT_SECONDS)
    await camera.close()


async def reset_devicemgmt(camera: Any) -> None:
    """Drop the device-management client so the next one signs with ``dt_diff``."""
    for key, service in list(camera.services.items()):
        if key[0] == "devicemgmt":
            await service.close()
            del camera.services[key]


def serialize(answer: object) -> dict[str, Any]:
    """A zeep result as plain dicts (empty dict for None)."""
    import zeep.helpers

    if answer is None:
        return {}
    helpers: Any = zeep.helpers       # untyped library
    plain = helpers.serialize_object(answer, dict)
    return plain if isinstance(plain, dict) else {"_value": plain}


def classify(exc: BaseException) -> OnvifFailure | None:
    """Our reason for a library/transport exception; None for anything else (a bug)."""
    import zeep.exceptions
    from onvif.exceptions import ONVIFAuthError, ONVIFError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OnvifFailure):     # ours, raised inside the library
            return current
        found = _one(current, zeep.exceptions, ONVIFAuthError)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    if isinstance(exc, ONVIFError):
        return OnvifFailure("protocol", str(exc))
    return None


def _one(exc: BaseException, zexc: Any, auth_error: type[Exception]) -> OnvifFailure | None:
    if isinstance(exc, auth_error):
        return OnvifFailure("authentication", str(exc))
    if isinstance(exc, zexc.Fault):
        text = " ".join(str(x) for x in (exc.message, exc.code, exc.subcodes) if x)
        if any(word in text.lower() for word in _AUTH_WORDS):
            return OnvifFailure("authentication", str(exc.message or "NotAuthorized"))
        return OnvifFailure("protocol", f"SOAP fault: {exc.message or exc.code}")
    if isinstance(exc, zexc.TransportError):
        if exc.status_code in (401, 403):
            return OnvifFailure("authentication", f"HTTP {exc.status_code}")
        return OnvifFailure("protocol", f"HTTP {exc.status_code}")
    if isinstance(exc, zexc.XMLSyntaxError | zexc.XMLParseError | zexc.ValidationError):
        return OnvifFailure("malformed", f"unparsable SOAP answer ({type(exc).__name__})")
    if isinstance(exc, zexc.Error):
        return OnvifFailure("malformed", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, TimeoutError):
        return OnvifFailure("unreachable", "timed out", Reason.TIMEOUT)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return OnvifFailure("truncated", "the answer ended early")
    if isinstance(exc, aiohttp.ClientError | OSError):
        failure = network_failure(exc.os_error if isinstance(
            exc, aiohttp.ClientConnectorError) else exc)
        # A client error that is no socket error still means no answer came.
        reason = Reason.UNREACHABLE if failure.reason is Reason.PROTOCOL else failure.reason
        return OnvifFailure("unreachable", failure.text, reason)
    return None


async def call(awaitable: Any) -> Any:
    """Await a library call, turning its many exception types into OnvifFailure."""
    try:
        return await awaitable
    except OnvifFailure:
        raise
    except Exception as exc:
        # The library fails in its own ways (AttributeError, KeyError…) on some
        # device answers; device data never crashes a probe.
        failure = classify(exc) or OnvifFailure(
            "malformed", f"the ONVIF client failed on the answer ({type(exc).__name__})")
        raise failure from exc


def first_text(mapping: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


# GetCapabilities names each service by an element; the services added after ONVIF 1.0
# sit under its Extension (DeviceIO, Recording, Search, Replay …), which a fallback
# reading only the top level misses — an NVR without GetServices would then never get
# its recording checked.
CAPABILITY_NAMESPACES = {
    "Analytics": "http://www.onvif.org/ver20/analytics/wsdl",
    "Device": "http://www.onvif.org/ver10/device/wsdl",
    "Events": "http://www.onvif.org/ver10/events/wsdl",
    "Imaging": "http://www.onvif.org/ver20/imaging/wsdl",
    "Media": "http://www.onvif.org/ver10/media/wsdl",
    "PTZ": "http://www.onvif.org/ver20/ptz/wsdl",
    "DeviceIO": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "Display": "http://www.onvif.org/ver10/display/wsdl",
    "Recording": "http://www.onvif.org/ver10/recording/wsdl",
    "Search": "http://www.onvif.org/ver10/search/wsdl",
    "Replay": "http://www.onvif.org/ver10/replay/wsdl",
    "Receiver": "http://www.onvif.org/ver10/receiver/wsdl",
    "AnalyticsDevice": "http://www.onvif.org/ver10/analyticsdevice/wsdl",
}


async def discover_services(camera: Any, devicemgmt: Any,
                            call_with: Callable[[Awaitable[Any]], Awaitable[Any]] = call
                            ) -> None:
    """Fill ``camera.xaddrs`` from GetServices (each address re-pointed at the host we
    were told to use), falling back to GetCapabilities on firmware without it.
    ``call_with`` wraps each library call (a time bound, for the events source)."""
    try:
        found = await call_with(devicemgmt.GetServices({"IncludeCapability": False}))
        for service in found or []:
            entry = serialize(service)
            namespace, xaddr = entry.get("Namespace"), entry.get("XAddr")
            if isinstance(namespace, str) and isinstance(xaddr, str):
                camera.xaddrs[namespace] = camera.rewrite_url(xaddr.strip())
    except OnvifFailure as exc:
        if exc.final:
            raise
    if not camera.xaddrs:     # old firmware: GetServices unsupported
        answer = serialize(await call_with(devicemgmt.GetCapabilities({"Category": "All"})))
        capabilities_xaddrs(camera, answer)


def capabilities_xaddrs(camera: Any, answer: Mapping[str, Any]) -> None:
    """The services a GetCapabilities answer names, top level and Extension."""
    capabilities = answer.get("Capabilities", answer)
    if not isinstance(capabilities, Mapping):
        return
    extension = capabilities.get("Extension")
    entries: list[tuple[str, object]] = list(capabilities.items())
    if isinstance(extension, Mapping):
        entries += extension.items()
        # The schema opens Extension with an xs:any, and zeep hands everything under
        # it to that wildcard as raw elements (DeviceIO, Recording … included): read
        # those by name too.
        raw = extension.get("_value_1")
        for element in raw if isinstance(raw, list) else []:
            tag = getattr(element, "tag", None)
            if isinstance(tag, str):
                entries.append((tag.rsplit("}", 1)[-1], {"XAddr": _child_text(element,
                                                                               "XAddr")}))
    for name, entry in entries:
        namespace = CAPABILITY_NAMESPACES.get(name)
        xaddr = entry.get("XAddr") if isinstance(entry, Mapping) else None
        if namespace and isinstance(xaddr, str) and xaddr.strip():
            camera.xaddrs[namespace] = camera.rewrite_url(xaddr.strip())


def _child_text(element: Any, local: str) -> str | None:
    for child in element:
        if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == local:
            return str(child.text or "")
    return None
