"""JSON API for tickets and silences: ``/api/v1/tickets…`` and ``/api/v1/silences…``.

Reads are GET; every change is a POST and so needs the bearer token (web/server.py's
middleware).  A write names the person acting in ``actor``: the token proves the
caller may write, not who they are; the audit trail records the actor and that it came
through the API.  Every action is the ticket stage's own (tickets.actions and its
siblings), the same the CLI and the pages call.  Refusals carry the lifecycle's
message: 404 unknown ticket, 409 transition not allowed now, 422 bad input, 503 store
or ticket stage unavailable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from elvwatch.rules.silence import Silence, Silencer, new_silence
from elvwatch.tickets import silence_store
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import IllegalTransition, UnknownTicket
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.records import (
    Actor,
    NewTicket,
    PartReplaced,
    Replacement,
    RmaClaim,
    ServiceRecord,
    SignOff,
)
from elvwatch.tickets.store import StoreError
from elvwatch.web.json_body import BodyError, read_json

M = TypeVar("M", bound=BaseModel)
ManagerGetter = Callable[[], TicketManager | None]
SilencerGetter = Callable[[], Silencer | None]
# A getter, not a class: the key names its type by subscription.
MANAGER = web.AppKey[ManagerGetter]("ticket_manager")
SILENCER = web.AppKey[SilencerGetter]("silencer")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(Strict):
    actor: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=4000)

    @property
    def who(self) -> Actor:
        return Actor(self.actor, "api")


class Part(Strict):
    part: str = Field(min_length=1, max_length=400)
    device: str | None = None
    quantity: int = Field(1, ge=1, le=10_000)


class DeviceReplacement(Strict):
    """The new unit that replaced a device: written into the equipment archive."""

    device: str | None = None
    serial: str = Field(min_length=1, max_length=256)
    model: str = Field("", max_length=256)
    vendor: str = Field("", max_length=256)
    installed: date | None = None
    warranty_until: date | None = None


class ChecklistResult(Strict):
    ok: bool
    note: str = ""


class ResolveBody(Body):
    """A service record; for a preventive work order, ``results`` of its checklist."""

    engineer: str = Field(min_length=1, max_length=200)
    work_done: str = Field("", max_length=4000)
    parts: list[Part] = Field(default_factory=list)
    replacements: list[DeviceReplacement] = Field(default_factory=list)
    results: dict[str, ChecklistResult] | None = None


class SignOffBody(Body):
    """The site representative's acceptance; through the API it is usually the paper
    receipt (服务回执单) an engineer records."""

    name: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=4000)
    channel: Literal["paper", "link"] = "paper"
    receipt: str = Field("", max_length=64)


class DeadlineBody(Body):
    due: AwareDatetime  # ISO 8601 with a zone


class ReclassifyBody(Body):
    severity: Literal["general", "major", "emergency"]
    reason: str = Field(min_length=1, max_length=4000)


class FeedbackBody(Body):
    rating: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=4000)


class RmaBody(Body):
    claim_number: str = Field(min_length=1, max_length=64)
    part: str = Field("", max_length=400)
    vendor: str = Field("", max_length=200)
    vendor_contact: str = Field("", max_length=400)
    device: str | None = None
    sent_on: date | None = None
    returned_on: date | None = None


class CreateBody(Strict):
    """A ticket for a phone call, a WeChat message or a walk-in request."""

    actor: str = Field(min_length=1, max_length=128)
    site: str = Field(min_length=1, max_length=128)
    description: str = Field(min_length=1, max_length=4000)
    reporter: str = Field(min_length=1, max_length=200)
    channel: Literal["phone", "wechat", "walk_in", "email", "other"]
    severity: Literal["general", "major", "emergency"] = "general"
    device: str | None = Field(None, max_length=128)
    location: str | None = Field(None, max_length=400)
    system: Literal["cctv", "access_control", "intercom", "alarm", "network",
                    "power"] | None = None
    reporter_contact: str = Field("", max_length=200)
    title: str = Field("", max_length=200)
    reported_at: AwareDatetime | None = None


class SilenceBody(Strict):
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


async def create_ticket(request: web.Request) -> web.Response:
    manager = _manager(request)
    b = await _body(request, CreateBody)
    events = await manager.create(NewTicket(
        site=b.site, description=b.description, reporter=b.reporter, channel=b.channel,
        severity=b.severity, device=b.device, location=b.location, system=b.system,
        reporter_contact=b.reporter_contact, title=b.title,
        reported_at=b.reported_at.timestamp() if b.reported_at else None),
        Actor(b.actor, "api"))
    detail = await manager.get(events[0].ticket)
    return _json({"ticket": dataclasses.asdict(detail.ticket), "events": _events(events)},
                 status=201)


Act = Callable[[TicketManager, str, web.Request], Awaitable[list[TicketEvent]]]


async def _ack(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, Body)
    return await m.acknowledge(number, b.who, b.note)


async def _resolve(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, ResolveBody)
    if b.results is not None:
        return await m.complete_preventive(
            number, b.who, b.engineer, {k: (v.ok, v.note) for k, v in b.results.items()},
            b.work_done)
    return await m.resolve(number, b.who, ServiceRecord(
        b.engineer, b.work_done,
        tuple(PartReplaced(p.part, p.device, p.quantity) for p in b.parts),
        tuple(Replacement(x.device, x.serial, x.model, x.vendor, x.installed,
                          x.warranty_until) for x in b.replacements)))


async def _verify(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, Body)
    return await m.verify(number, b.who)


async def _sign_off(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, SignOffBody)
    return await m.sign_off(number, b.who, SignOff(b.name, b.comment, b.channel, b.receipt))


async def _reopen(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, Body)
    return await m.reopen(number, b.who, b.note)


async def _resolve_due(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, DeadlineBody)
    return await m.set_resolve_due(number, b.who, b.due.timestamp(), b.note)


async def _reclassify(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, ReclassifyBody)
    return await m.reclassify(number, b.who, b.severity, b.reason)


async def _feedback(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, FeedbackBody)
    return await m.add_feedback(number, b.who, b.rating, b.comment)


async def _rma(m: TicketManager, number: str, r: web.Request) -> list[TicketEvent]:
    b = await _body(r, RmaBody)
    return await m.record_rma(number, b.who, RmaClaim(
        b.claim_number, b.part, b.vendor_contact, b.vendor, b.device, b.sent_on,
        b.returned_on, b.note))


# action -> (handler, request body model, summary for the OpenAPI document)
ACTIONS: dict[str, tuple[Act, type[BaseModel], str]] = {
    "ack": (_ack, Body, "Acknowledge: an engineer takes the ticket (the response)"),
    "resolve": (_resolve, ResolveBody, "Resolve with the engineer's service record "
                "(also on a ticket waiting for it); preventive: checklist results"),
    "verify": (_verify, Body, "Confirm the recovery by hand (the probes do it for a "
               "watched device)"),
    "sign_off": (_sign_off, SignOffBody, "The site representative's acceptance: closes "
                 "the ticket once the recovery is confirmed"),
    "reopen": (_reopen, Body, "Reopen"),
    "resolve_due": (_resolve_due, DeadlineBody, "Set or renegotiate the agreed repair "
                    "deadline (a breach of the one it replaces stays)"),
    "reclassify": (_reclassify, ReclassifyBody, "Change the severity after diagnosis"),
    "feedback": (_feedback, FeedbackBody, "Record return-visit feedback"),
    "rma": (_rma, RmaBody, "Record or update a manufacturer warranty claim (RMA)"),
}
ALIASES = {"acknowledge": "ack"}


async def act(request: web.Request) -> web.Response:
    manager, number = _manager(request), request.match_info["number"]
    action = ALIASES.get(request.match_info["action"], request.match_info["action"])
    if action not in ACTIONS:
        return _problem(f"unknown action {action!r} (known: {', '.join(ACTIONS)})", 404)
    events = await ACTIONS[action][0](manager, number, request)
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
        web.post("/api/v1/tickets", create_ticket),
        web.get("/api/v1/tickets/{number}", show_ticket),
        web.post("/api/v1/tickets/{number}/{action}", act),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", add_silence),
        web.post("/api/v1/silences/{id}/expire", expire_silence),
    ])


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The paths and request-body schemas above, for web/api.py's OpenAPI document."""
    from pydantic.json_schema import models_json_schema

    models: dict[str, type[BaseModel]] = {m.__name__: m for _, m, _ in ACTIONS.values()}
    models |= {"CreateBody": CreateBody, "SilenceBody": SilenceBody}
    _, defs = models_json_schema([(models[n], "validation") for n in sorted(models)],
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
        "/api/v1/tickets": {
            "get": {"summary": "Tickets, newest first",
                    "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                                   for n in ("site", "state", "kind", "device", "limit")],
                    "responses": {"200": obj}},
            "post": {"summary": "Open a ticket for a person's request (phone call, WeChat "
                                "message, walk-in): the contract's deadlines from "
                                "reported_at (default now)",
                     "requestBody": body("CreateBody"), "security": [{"bearer": []}],
                     "responses": {"201": obj, "401": err, "422": err, "503": err}}},
        "/api/v1/tickets/{number}": {"get": {
            "summary": "One ticket with its audit trail, service records, sign-offs, "
                       "feedback, checklist results, warranty claims, archive changes and "
                       "superseded deadlines",
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
    for action, (_, model, summary) in ACTIONS.items():
        paths[f"/api/v1/tickets/{{number}}/{action}"] = {"post": {
            "summary": summary, "parameters": [number], "requestBody": body(model.__name__),
            **write}}
    return paths, defs.get("$defs", {})
