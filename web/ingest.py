"""``POST /api/v1/ingest``: site pollers' observations into the centre (role centre).

A poller sends its own bearer token (``centre.pollers.ID.token``), not the NOC's: the
token says which poller it is, and the poller may send observations of its own sites
only.  Replies:

* 200 — taken: ``applied`` new observations, ``duplicates`` already applied (a re-sent
  batch), ``skipped`` devices this centre does not take from the poller, ``last_seq``;
* 400 — not a batch (the message says which field is wrong);
* 401 — no token, or not a poller's; 403 — the body names another poller;
* 404 — this daemon is not a centre;
* 503 — the store cannot record the batch: the poller keeps it and sends it again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from elvwatch.probes.observation_wire import Batch
from elvwatch.tickets.store import StoreError
from elvwatch.web.alertmanager import validation_message
from elvwatch.web.json_body import BodyError, read_json
from elvwatch.web.view import VIEW

PATH = "/api/v1/ingest"


def _json(data: Any, status: int) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def poller_of(request: web.Request) -> str | None:
    """The poller whose token the request carries (each compared in constant time)."""
    given = request.headers.get("Authorization", "").encode()
    found = None
    for name, token in request.app[VIEW].config.tokens.items():
        if hmac.compare_digest(given, f"Bearer {token.value}".encode()):
            found = name
    return found


async def ingest(request: web.Request) -> web.Response:
    app = request.app[VIEW]
    if app.config.model.role != "centre":
        return _json({"error": "this elvwatch is not a centre (role: centre)"}, 404)
    poller = poller_of(request)
    if poller is None:
        return _json({"error": "a poller's bearer token is required"}, 401)
    try:
        batch = Batch.model_validate(await read_json(request))
    except BodyError as exc:
        return _json({"error": str(exc)}, 400)
    except ValidationError as exc:
        return _json({"error": "not a batch of observations: " + validation_message(exc)}, 400)
    if batch.poller != poller:
        return _json({"error": "the token is not the one of the poller the batch names"}, 403)
    try:
        # Shielded: a shutdown that cancels the request must not cut a batch between
        # applying it and recording its mark (it would be applied again when re-sent).
        taken = await asyncio.shield(app.ingest(poller, [(o.seq, o.observation())
                                                         for o in batch.observations]))
    except StoreError as exc:
        return _json({"error": f"not recorded, send again: {exc}"}, 503)
    return _json({"applied": taken.applied, "duplicates": taken.duplicates,
                  "last_seq": taken.last_seq, "skipped": list(taken.skipped),
                  "standby": taken.standby, "active": list(taken.active),
                  "renew_seconds": taken.renew_seconds}, 200)


def add_ingest_route(web_app: web.Application) -> None:
    web_app.add_routes([web.post(PATH, ingest)])


def openapi_paths() -> dict[str, Any]:
    err = {"description": "Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    obj = {"description": "Taken", "content": {"application/json": {
        "schema": {"type": "object"}}}}
    return {PATH: {"post": {
        "summary": "A site poller's numbered observations (role centre); the poller's own "
                   "token",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["poller", "observations"]}}}},
        "responses": {"200": obj, "400": err, "401": err, "403": err, "404": err,
                      "503": err}}}}
