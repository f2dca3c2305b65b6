"""``GET /api/v1/devices`` (filtered, paged, with ETags) and ``GET /api/v1/devices/{id}``.

The list comes from the device index (web/device_index.py): the summaries are encoded
already, so a page is a join of bytes.  Its order is the device ids' (code point
order), so a cursor is the last id of a page: the next page starts after it, and a
walk through the pages meets every device once even while states change or devices
come and go in between.  Filters and the cursor travel together: a cursor names the
site and state it was given for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from elvwatch.rules.state import DeviceState
from elvwatch.web import api
from elvwatch.web.device_index import DEVICE_INDEX, DeviceIndex
from elvwatch.web.view import VIEW

_STATES = ", ".join(state.value for state in DeviceState)
_CURSOR_VERSION = 1


class BadQuery(ValueError):
    """A query parameter that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    site: str | None
    state: DeviceState | None
    after: str | None
    limit: int | None


def list_query(query: Mapping[str, str]) -> ListQuery:
    site = query.get("site") or None
    state_text = query.get("state") or None
    state = None
    if state_text is not None:
        try:
            state = DeviceState(state_text)
        except ValueError:
            raise BadQuery(f"state: {state_text[:40]!r} is not one of {_STATES}") from None
    limit = None
    if "limit" in query:
        text = query["limit"]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= api.MAX_LIMIT):
            raise BadQuery(f"limit: {text[:40]!r} is not a whole number from 1 to "
                           f"{api.MAX_LIMIT}")
        limit = int(text)
    after = None
    if "cursor" in query:
        after = _cursor_after(query["cursor"], site, state)
    return ListQuery(site, state, after, limit)


def cursor(site: str | None, state: DeviceState | None, last: str) -> str:
    """The opaque cursor of the page after the one ending with device ``last``."""
    payload = json.dumps([_CURSOR_VERSION, site, state.value if state else None, last],
                         ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _cursor_after(text: str, site: str | None, state: DeviceState | None) -> str:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, c_site, c_state, last = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise BadQuery("cursor: not a cursor this list gave out (pass next_cursor "
                       "unchanged)") from None
    if version != _CURSOR_VERSION or not isinstance(last, str):
        raise BadQuery("cursor: not a cursor this list gave out (pass next_cursor "
                       "unchanged)")
    if c_site != site or c_state != (state.value if state else None):
        raise BadQuery("cursor: it was given for another site or state; ask with the "
                       "same site and state, or start again without a cursor")
    return last


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether the client's If-None-Match names ``etag`` (or is ``*``)."""
    given = request.if_none_match
    return given is not None and any(t.value in (etag, "*") for t in given)


def _json_bytes(body: bytes, etag: str) -> web.Response:
    response = web.Response(body=body, content_type="application/json", charset="utf-8")
    response.etag = etag
    # Stored by browsers and proxies, but asked again (If-None-Match) before each use.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _unchanged(etag: str) -> web.Response:
    response = web.Response(status=304)
    response.etag = etag
    response.headers["Cache-Control"] = "no-cache"
    return response


async def devices(request: web.Request) -> web.Response:
    index = request.app[DEVICE_INDEX]
    try:
        query = list_query(request.query)
    except BadQuery as exc:
        return _error(str(exc), 400)
    index.refresh()
    if not_modified(request, index.etag(query.site)):
        return _unchanged(index.etag(query.site))
    await index.warm()
    index.refresh()  # what changed while it warmed: from here on nothing waits
    ids = index.select(query.site, query.state, query.after,
                       query.limit + 1 if query.limit is not None else None)
    following = None
    if query.limit is not None and len(ids) > query.limit:
        del ids[query.limit:]
        following = cursor(query.site, query.state, ids[-1])
    body = b"".join((b'{"devices":[', b",".join(index.fragment(i) for i in ids),
                     b'],"next_cursor":', json.dumps(following).encode(), b"}"))
    return _json_bytes(body, index.etag(query.site))


async def device(request: web.Request) -> web.Response:
    """One device; its ETag is its body's digest (a detail changes with every check run,
    and is one device's work to build)."""
    app = request.app[VIEW]
    device_id = request.match_info["id"]
    dev = app.config.devices.get(device_id)
    status = app.statuses.get(device_id)
    if dev is None or status is None:
        return _error(f"no device {device_id!r}", 404)
    body = json.dumps(api.detail(dev, status).model_dump(mode="json"), ensure_ascii=False,
                      default=str).encode()
    etag = hashlib.blake2b(body, digest_size=12).hexdigest()
    if not_modified(request, etag):
        return _unchanged(etag)
    return _json_bytes(body, etag)


def add_device_routes(web_app: web.Application) -> None:
    if DEVICE_INDEX not in web_app:
        web_app[DEVICE_INDEX] = DeviceIndex(web_app[VIEW])
    web_app.add_routes([
        web.get("/api/v1/devices", devices),
        web.get("/api/v1/devices/{id}", device),
    ])
