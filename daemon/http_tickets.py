"""JSON API for tickets and silences: ``/api/v1/tickets…`` and ``/api/v1/silences…``.

Reads are GET; every change is a POST and so needs the bearer token (daemon/http.py's
middleware).  A write names the person acting in ``actor``: the token proves the
caller may write, not who they are.  Refusals carry the lifecycle's message:
404 unknown ticket, 409 transition not allowed now, 422 bad input, 503 store or
ticket stage unavailable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.http_json import BodyError, read_json
from rules.silence import Silence, Silencer, new_silence
from tickets import silence_store
from tickets.actions import PartReplaced, ServiceRecord, SignOff
from tickets.events import TicketEvent
from tickets.lifecycle import IllegalTransition, UnknownTicket
from tickets.manager import TicketManager
from tickets.store import StoreError

M = TypeVar("M", bound=BaseModel)
ManagerGetter = Callable[[], TicketManager | None]
SilencerGetter = Callable[[], Silencer | None]
MANAGER: web.AppKey[ManagerGetter] = web.AppKey("ticket_manager", object)  # type: ignore[arg-type]
SILENCER: web.AppKey[SilencerGetter] = web.AppKey("silencer", object)  # type: ignore[arg-type]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    actor: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=4000)


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    part: str = Field(min_length=1, max_length=400)
    device: str | None = None
    quantity: int = Field(1, ge=1, le=10_000)


class ChecklistResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ok: bool
    note: str = ""


class ResolveBody(Body):
    """A service record; for a preventive work order, ``results`` of its checklist."""

    engineer: str = Field(min_length=1, max_length=200)
    work_done: str = Field("", max_length=4000)
    parts: list[Part] = Field(default_factory=list)
    results: dict[str, ChecklistResult] | None = None


class SignOffBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=4000)


class VerifyBody(Body):
    sign_off: SignOffBody | None = None


class DeadlineBody(Body):
    due: datetime  # ISO 8601 with a zone


class FeedbackBody(Body):
    rating: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=4000)


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    matchers: dict[str, str | list[str]]
    who: str = Field(min_length=1, max_length=128)
    why: str = Field(min_length=1, max_length=4000)
    until: datetime
    starts: datetime | None = None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def _problem(message: str, status: int) -> web.Response:
    return _json({"error": message}, status=status)


def _manager(request: web.Request) -> TicketManager:
    manager = request.app[MANAGER]()
    if manager is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "the ticket stage is not running"}),
            content_type="application/json")
    return manager


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        data = await read_json(request)
    except BodyError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}, ensure_ascii=False),
                                 content_type="application/json") from None
    try:
        return model.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise web.HTTPUnprocessableEntity(text=json.dumps({"error": f"bad request body: {exc}"},
                                                          ensure_ascii=False),
                                          content_type="application/json") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(("/api/v1/tickets", "/api/v1/silences")):
        return await handler(request)
    try:
        return await handler(request)
    except UnknownTicket as exc:
        return _problem(str(exc), 404)
    except IllegalTransition as exc:
        return _problem(str(exc), 409)
    except ValueError as exc:
        return _problem(str(exc), 422)
    except StoreError as exc:
        return _problem(str(exc), 503)


def _events(events: list[TicketEvent]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in events]


async def list_tickets(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = int(q.get("limit", "200"))
    except ValueError:
        return _problem("limit must be a number", 422)
    tickets = await _manager(request).list_tickets(
        site=q.get("site"), state=q.get("state"), kind=q.get("kind"),
        device=q.get("device"), limit=limit)
    return _json({"tickets": [dataclasses.asdict(t) for t in tickets]})


async def show_ticket(request: web.Request) -> web.Response:
    detail = await _manager(request).get(request.match_info["number"])
    return _json(dataclasses.asdict(detail))


async def act(request: web.Request) -> web.Response:
    manager, number = _manager(request), request.match_info["number"]
    action = request.match_info["action"]
    events: list[TicketEvent]
    if action in ("ack", "acknowledge", "close", "reopen"):
        body = await _body(request, Body)
        call = {"ack": manager.acknowledge, "acknowledge": manager.acknowledge,
                "close": manager.close, "reopen": manager.reopen}[action]
        events = await call(number, body.actor, body.note)
    elif action == "resolve":
        rb = await _body(request, ResolveBody)
        if rb.results is not None:
            events = await manager.complete_preventive(
                number, rb.actor, rb.engineer,
                {k: (v.ok, v.note) for k, v in rb.results.items()}, rb.work_done)
        else:
            events = await manager.resolve(number, rb.actor, ServiceRecord(
                rb.engineer, rb.work_done,
                tuple(PartReplaced(p.part, p.device, p.quantity) for p in rb.parts)))
    elif action == "verify":
        vb = await _body(request, VerifyBody)
        sign = SignOff(vb.sign_off.name, vb.sign_off.comment) if vb.sign_off else None
        events = await manager.verify(number, vb.actor, sign)
    elif action == "resolve_due":
        db = await _body(request, DeadlineBody)
        if db.due.tzinfo is None:
            return _problem("due needs a time zone, e.g. 2026-03-05T18:00+08:00", 422)
        events = await manager.set_resolve_due(number, db.actor, db.due.timestamp(), db.note)
    elif action == "feedback":
        fb = await _body(request, FeedbackBody)
        events = await manager.add_feedback(number, fb.actor, fb.rating, fb.comment)
    else:
        return _problem(f"unknown action {action!r}", 404)
    detail = await manager.get(number)
    return _json({"ticket": dataclasses.asdict(detail.ticket), "events": _events(events)})


def _silence(s: Silence, now: float) -> dict[str, Any]:
    return {"id": s.id, "matchers": {k: sorted(v) for k, v in s.matchers.items()},
            "who": s.who, "why": s.why, "starts": s.starts, "until": s.until,
            "created": s.created, "active": s.active(now)}


async def list_silences(request: web.Request) -> web.Response:
    manager = _manager(request)
    silencer = request.app[SILENCER]()
    now = manager.clock()
    expired = request.query.get("expired") in ("1", "true", "yes")
    silences = (silencer.list(include_expired=expired) if silencer is not None
                else [s for s in await silence_store.load(manager.store)
                      if expired or now < s.until])
    return _json({"silences": [_silence(s, now) for s in silences]})


async def add_silence(request: web.Request) -> web.Response:
    manager = _manager(request)
    body = await _body(request, SilenceBody)
    if body.until.tzinfo is None or (body.starts is not None and body.starts.tzinfo is None):
        return _problem("times need a time zone, e.g. 2026-03-05T18:00+08:00", 422)
    now = manager.clock()
    silence = new_silence(body.matchers, body.who, body.why, body.until.timestamp(),
                          body.starts.timestamp() if body.starts else now, now=now)
    await silence_store.save(manager.store, silence)
    silencer = request.app[SILENCER]()
    if silencer is not None:
        silencer.add(silence)
    return _json(_silence(silence, now), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    manager = _manager(request)
    silence_id = request.match_info["id"]
    if not await silence_store.expire(manager.store, silence_id, manager.clock()):
        return _problem(f"no silence {silence_id!r}", 404)
    silencer = request.app[SILENCER]()
    if silencer is not None:
        silencer.expire(silence_id)
    return _json({"id": silence_id, "expired": True})


def add_ticket_routes(web_app: web.Application, manager_getter: ManagerGetter,
                      silencer_getter: SilencerGetter = lambda: None) -> None:
    """Mount the ticket and silence API on the daemon's aiohttp application (before it
    starts).  The getters are called per request, so the app may build or swap the
    manager and the rule engine's silencer after the routes exist."""
    web_app[MANAGER] = manager_getter
    web_app[SILENCER] = silencer_getter
    web_app.middlewares.append(_errors)
    web_app.add_routes([
        web.get("/api/v1/tickets", list_tickets),
        web.get("/api/v1/tickets/{number}", show_ticket),
        web.post("/api/v1/tickets/{number}/{action}", act),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", add_silence),
        web.post("/api/v1/silences/{id}/expire", expire_silence),
    ])


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The paths and request-body schemas above, for daemon/api.py's OpenAPI document."""
    from pydantic.json_schema import models_json_schema

    models = (Body, ResolveBody, VerifyBody, DeadlineBody, FeedbackBody, SilenceBody)
    _, defs = models_json_schema([(m, "validation") for m in models],
                                 ref_template="#/components/schemas/{model}")

    def body(model: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model}"}}}}

    obj = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    err = {"description": "Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    write = {"security": [{"bearer": []}], "responses": {
        "200": obj, "401": err, "404": err, "409": err, "422": err, "503": err}}
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/api/v1/tickets": {"get": {
            "summary": "Tickets, newest first",
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("site", "state", "kind", "device", "limit")],
            "responses": {"200": obj}}},
        "/api/v1/tickets/{number}": {"get": {
            "summary": "One ticket with its audit trail, service records, sign-offs, "
                       "feedback and checklist results",
            "parameters": [number], "responses": {"200": obj, "404": err}}},
        "/api/v1/silences": {
            "get": {"summary": "Silences (?expired=1 includes ended ones)",
                    "responses": {"200": obj}},
            "post": {"summary": "Add a silence / maintenance window",
                     "requestBody": body("SilenceBody"), **write}},
        "/api/v1/silences/{id}/expire": {"post": {
            "summary": "End a silence now",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}], **write}},
    }
    for action, model, summary in (
            ("ack", "Body", "Acknowledge"), ("resolve", "ResolveBody",
             "Resolve with a service record (preventive: checklist results)"),
            ("verify", "VerifyBody", "Verify, with the site representative's sign-off"),
            ("close", "Body", "Close"), ("reopen", "Body", "Reopen"),
            ("resolve_due", "DeadlineBody", "Set the agreed repair deadline"),
            ("feedback", "FeedbackBody", "Record return-visit feedback")):
        paths[f"/api/v1/tickets/{{number}}/{action}"] = {"post": {
            "summary": summary, "parameters": [number], "requestBody": body(model), **write}}
    return paths, defs.get("$defs", {})
