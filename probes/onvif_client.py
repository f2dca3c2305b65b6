"""The boundary with onvif-zeep-async: building/closing a client, errors, results.

Everything library-typed stays here and in ``probes.onvif``; what leaves is plain
dicts, strings and :class:`OnvifFailure`.

Library behaviours worked around here:

* its import runs ``logging.basicConfig(level=INFO)``; we import it lazily, after the
  daemon configured logging (then basicConfig is a no-op), and quieten its loggers;
* its constructor pops ``http_proxy``/``https_proxy`` from ``os.environ`` (harmless
  for us: cameras are on the LAN and we never use a proxy) — we restore them;
* zeep's on-disk SQLite cache is not used (``no_cache``): the WSDLs are bundled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from probes.base import ProbeError, bounded

_AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "authority failure",
               "authentication")


class OnvifFailure(ProbeError):
    """One ONVIF exchange failed; ``reason`` starts the error text."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {bounded(detail, 160)}" if detail else reason)
        self.reason = reason


def _library() -> Any:
    import onvif

    for name in ("onvif", "zeep", "zeep.client", "zeep.wsdl", "zeep.xsd", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return onvif


def new_camera(host: str, port: int, user: str | None, password: str | None) -> Any:
    onvif = _library()
    proxies = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
    try:
        return onvif.ONVIFCamera(host, port, user, password, no_cache=True,
                                 adjust_time=False, nat_override=True)
    finally:
        os.environ.update(proxies)


async def close_camera(camera: Any) -> None:
    """Close every HTTP session of the client; never raises (it runs in finally)."""
    with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
        await asyncio.shield(camera.close())


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
        return OnvifFailure("unreachable", "timed out")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return OnvifFailure("truncated", "the answer ended early")
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return OnvifFailure("unreachable", _os_text(exc))
    if isinstance(exc, aiohttp.ClientError | OSError):
        return OnvifFailure("unreachable", _os_text(exc))
    return None


def _os_text(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


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
        if exc.reason in ("authentication", "unreachable"):
            raise
    if not camera.xaddrs:     # old firmware: GetServices unsupported
        # The library maps each capability's XAddr (re-pointed at our host).
        await call_with(camera.get_capabilities())
