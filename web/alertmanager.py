"""``POST /api/v1/alertmanager``: Alertmanager's webhook in, faults and tickets out.

Point an Alertmanager ``webhook_config`` at it; like every write it needs the bearer
token (web/server.py's middleware), which Alertmanager sends from
``http_config.authorization.credentials_file``.  Replies:

* 200 — every alert was mapped to a device and handed to the ticket stage (stored);
* 400 — not an Alertmanager v4 payload (the message says which field is wrong);
* 401 — no or wrong token;
* 422 — some alerts name no configured device: those are listed, the others were
  handled all the same.  Alertmanager does not retry a 4xx but logs the reply, so the
  mistake shows in its log; re-sending is harmless (handling is idempotent);
* 503 — the ticket stage or its store is unavailable: Alertmanager retries a 5xx.

The alerts are handled before the reply (not queued like the rule engine's faults) so
a 200 means stored and a failure is the sender's to retry.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from elvwatch.config.resolved import Config
from elvwatch.rules.alertmanager import DeviceIndex, Payload, to_transitions
from elvwatch.tickets.store import StoreError
from elvwatch.web.json_body import BodyError, read_json
from elvwatch.web.view import VIEW, DaemonView

PATH = "/api/v1/alertmanager"
MAX_ERRORS_SHOWN = 10
_INDEX: web.AppKey[list[tuple[Config, DeviceIndex]]] = web.AppKey(
    "alertmanager_index", list)


def _json(data: Any, status: int) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _index(request: web.Request, app: DaemonView) -> DeviceIndex:
    # Rebuilt when a reload swapped the config.
    cache = request.app[_INDEX]
    if not cache or cache[0][0] is not app.config:
        cache[:] = [(app.config, DeviceIndex(d.target for d in app.config.devices.values()))]
    return cache[0][1]


async def receive(request: web.Request) -> web.Response:
    app = request.app[VIEW]
    try:
        raw = await read_json(request)
    except BodyError as exc:
        return _json({"error": f"{exc} (expected an Alertmanager webhook payload, "
                               "version 4)"}, 400)
    try:
        payload = Payload.model_validate(raw)
    except ValidationError as exc:
        return _json({"error": "not an Alertmanager webhook payload (version 4): "
                               + validation_message(exc)}, 400)
    tickets = app.tickets
    if tickets is None:
        return _json({"error": "the ticket stage is not running"}, 503)
    config = app.config.model.alertmanager
    transitions, unmapped = to_transitions(payload, _index(request, app), config,
                                           app.silencer.mutes, tickets.clock())
    try:
        events = await tickets.handle(transitions) if transitions else []
    except StoreError as exc:
        return _json({"error": f"tickets not stored, retry: {exc}"}, 503)
    body: dict[str, Any] = {
        "accepted": len(transitions),
        "events": [{"ticket": e.ticket, "kind": e.kind.value, "state": e.state}
                   for e in events]}
    if unmapped:
        body["error"] = (f"{len(unmapped)} alert(s) name no configured device; map them with "
                         "a device/instance label (see alertmanager: in the config)")
        body["unmapped"] = [dataclasses.asdict(u) for u in unmapped]
        return _json(body, 422)
    return _json(body, 200)


def add_alertmanager_route(web_app: web.Application) -> None:
    web_app[_INDEX] = []
    web_app.add_routes([web.post(PATH, receive)])


def openapi_paths() -> dict[str, Any]:
    err = {"description": "Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    obj = {"description": "Handled", "content": {"application/json": {
        "schema": {"type": "object"}}}}
    return {PATH: {"post": {
        "summary": "Alertmanager webhook (payload version 4): alerts become faults and "
                   "tickets of the devices their labels name",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["version", "status", "alerts"]}}}},
        "responses": {"200": obj, "400": err, "401": err, "422": obj, "503": err}}}}
