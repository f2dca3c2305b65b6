"""The forms engineers post from a phone: dispatch, arrival and departure, the service
record, a work order's checklist, a photo, a paper receipt, a return visit, the client's
sign-off link, the severity after diagnosis and a warranty claim (web/page_diagnosis.py);
on a site page a request taken by phone and a periodic return visit.

Only an engineer's personal link reaches these handlers (web/engineer_access.py
checks the link, its site and the form's token first), and every action goes through
the ticket stage's one path as that engineer: "王工 (wang)" through ``page``.  A form
that is refused shows the ticket again with the reason in the site's language (422
bad input, 409 the ticket changed meanwhile); a form that worked answers 303 to the
ticket page saying so, so a reload does not post it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from elvwatch.tickets.field_work import Dispatch, FieldWork, PhotoFile, ReturnVisit
from elvwatch.tickets.lifecycle import IllegalTransition, TicketError, UnknownTicket
from elvwatch.tickets.records import (
    PEOPLE_CHANNELS,
    SEVERITIES,
    NewTicket,
    PartReplaced,
    ServiceRecord,
    SignOff,
)
from elvwatch.tickets.store import StoreError
from elvwatch.web import links, page_diagnosis, photos
from elvwatch.web.engineer_access import Engineer, engineer_of
from elvwatch.web.form_fields import FormError, local_time, text_field, yuan
from elvwatch.web.pages import message_page, site_page, ticket_page
from elvwatch.web.view import PAGES_VIEW, DaemonView

PART_ROWS = 4                # part lines on the service-record form
SIGNOFF_LINK_HOURS = 72.0


def _app(request: web.Request) -> DaemonView:
    app = request.app[PAGES_VIEW]
    if app.tickets is None:
        raise web.HTTPServiceUnavailable(text="the ticket stage is not running")
    return app


def _engineer(request: web.Request) -> Engineer:
    engineer = engineer_of(request)
    if engineer is None:   # the access check lets no one else post here
        raise web.HTTPForbidden(text="an engineer's link is needed")
    return engineer


async def ticket_action(request: web.Request) -> web.StreamResponse:
    app, engineer = _app(request), _engineer(request)
    assert app.tickets is not None
    number, action = request.match_info["number"], request.match_info["action"]
    handler = _TICKET_ACTIONS.get(action)
    if handler is None:
        return message_page(request, 404, "not_found", "not_found")
    try:
        detail = await app.tickets.get(number)
        extra = await handler(request, app, engineer, number, detail.ticket.site)
    except UnknownTicket:
        return message_page(request, 404, "not_found", "not_found")
    except FormError as exc:
        return await ticket_page(request, error="bad_input" if exc.key == "bad_input" else
                                 exc.key, status=422, error_values=exc.values)
    except photos.PhotoRefused as exc:
        return await ticket_page(request, error=exc.reason, status=413 if exc.reason ==
                                 "photo_too_big" else 415,
                                 error_values={"mb": photos.MAX_BYTES // (1024 * 1024)})
    except IllegalTransition as exc:
        return await ticket_page(request, error="action_refused", status=409,
                                 error_values={"state": exc.state.value})
    except (TicketError, ValueError) as exc:
        return await ticket_page(request, error="bad_input", status=422,
                                 error_values={"detail": str(exc)})
    except StoreError:
        return await ticket_page(request, error="unavailable", status=503)
    if extra is not None:
        return extra
    raise web.HTTPSeeOther(request.app.router["ticket_page"].url_for(number=number)
                           .with_query({"done": action}))


Result = web.StreamResponse | None


async def _dispatch(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                    site: str) -> Result:
    form = await request.post()
    assignee_id = text_field(form, "assignee") or engineer.config.id
    assignee = next((e for e in app.config.model.engineers if e.id == assignee_id), None)
    if assignee is None:
        raise FormError("bad_input", detail=assignee_id)
    dispatch = Dispatch(text_field(form, "solution", required="solution"), assignee.name,
                        local_time(text_field(form, "eta"), request, site))
    assert app.tickets is not None
    await FieldWork(app.tickets).dispatch(number, engineer.actor, dispatch,
                                          text_field(form, "note"))
    return None


async def _arrive(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                  site: str) -> Result:
    return await _visit(request, app, engineer, number, arriving=True)


async def _depart(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                  site: str) -> Result:
    return await _visit(request, app, engineer, number, arriving=False)


async def _visit(request: web.Request, app: DaemonView, engineer: Engineer, number: str, *,
                 arriving: bool) -> Result:
    form = await request.post()
    assert app.tickets is not None
    field = FieldWork(app.tickets)
    await (field.arrive if arriving else field.depart)(
        number, engineer.actor, engineer.config.name, text_field(form, "note"))
    return None


def parts_of(form: Mapping[str, Any]) -> tuple[PartReplaced, ...]:
    parts = []
    for n in range(1, PART_ROWS + 1):
        name = text_field(form, f"part_{n}", limit=400)
        if not name:
            continue
        quantity_text = text_field(form, f"qty_{n}") or "1"
        if not quantity_text.isdigit() or not 1 <= int(quantity_text) <= 10_000:
            raise FormError("bad_input", detail=f"{name}: {quantity_text}")
        parts.append(PartReplaced(name, quantity=int(quantity_text),
                                  unit_price_cents=yuan(text_field(form, f"price_{n}"), name),
                                  consumable=bool(form.get(f"consumable_{n}"))))
    return tuple(parts)


async def _record(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                  site: str) -> Result:
    form = await request.post()
    record = ServiceRecord(engineer.config.name, text_field(form, "work", required="work_done"),
                           parts_of(form), cause=text_field(form, "cause"))
    assert app.tickets is not None
    await app.tickets.resolve(number, engineer.actor, record)
    return None


async def _complete(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                    site: str) -> Result:
    form = await request.post()
    assert app.tickets is not None
    detail = await app.tickets.get(number)
    results: dict[str, tuple[bool, str]] = {}
    devices: dict[str, str] = {}
    for item in detail.ticket.checklist:
        verdict = text_field(form, f"item_{item}")
        if verdict not in ("ok", "fail"):
            raise FormError("field_required", field=item)
        results[item] = (verdict == "ok", text_field(form, f"note_{item}", limit=1000))
        device = text_field(form, f"device_{item}", limit=128)
        if device:
            if device not in app.config.devices or \
                    app.config.devices[device].config.site != site:
                raise FormError("bad_input", detail=device)
            devices[item] = device
    await app.tickets.complete_preventive(number, engineer.actor, engineer.config.name,
                                          results, text_field(form, "work"), devices)
    return None


async def _photo(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                 site: str) -> Result:
    upload = await photos.read_upload(request)
    checked = await asyncio.to_thread(photos.check, upload.data)
    await asyncio.to_thread(photos.save, app.config.photos_dir, checked)
    assert app.tickets is not None
    await FieldWork(app.tickets).add_photo(number, engineer.actor, PhotoFile(
        checked.file, checked.content_type, len(checked.data), checked.sha256, checked.width,
        checked.height), upload.caption)
    return None


async def _paper_receipt(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                         site: str) -> Result:
    form = await request.post()
    sign = SignOff(text_field(form, "name", required="signer", limit=200),
                   text_field(form, "comment"), channel="paper",
                   receipt=text_field(form, "receipt", limit=64))
    assert app.tickets is not None
    await app.tickets.sign_off(number, engineer.actor, sign)
    return None


def return_visit_of(form: Mapping[str, Any]) -> ReturnVisit:
    rating = text_field(form, "rating")
    if rating not in ("1", "2", "3", "4", "5"):
        raise FormError("field_required", field="rating")
    quality = text_field(form, "quality_issue")
    return ReturnVisit(int(rating), text_field(form, "comment"),
                       text_field(form, "contact", limit=200),
                       {"yes": True, "no": False}.get(quality), text_field(form, "solution"),
                       text_field(form, "outcome"))


async def _return_visit(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                        site: str) -> Result:
    visit = return_visit_of(await request.post())
    assert app.tickets is not None
    await FieldWork(app.tickets).return_visit(site, engineer.actor, visit, number)
    return None


async def _signoff_link(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                        site: str) -> Result:
    """The client's sign-off link, shown on the page for the engineer to send on."""
    token = links.read_token(app.config.model.http.token_file)
    assert token is not None   # an engineer's link is signed with it
    signed = links.sign(token, number, SIGNOFF_LINK_HOURS)
    base = f"{request.scheme}://{request.host}"
    url = str(request.app.router["ticket_page"].url_for(number=number)
              .with_query({"link": signed}))
    return await ticket_page(request, signoff_url=base + url)


async def _resolve_due(request: web.Request, app: DaemonView, engineer: Engineer, number: str,
                       site: str) -> Result:
    """The repair deadline agreed with the site representative (a major fault's), or a
    new one: the one it replaces keeps its breach."""
    form = await request.post()
    due = local_time(text_field(form, "due", required="resolve_by"), request, site)
    assert app.tickets is not None and due is not None
    await app.tickets.set_resolve_due(number, engineer.actor, due, text_field(form, "note"))
    return None


_TICKET_ACTIONS = {"dispatch": _dispatch, "resolve_due": _resolve_due, "arrive": _arrive,
                   "depart": _depart,
                   "record": _record, "complete": _complete, "photo": _photo,
                   "paper_receipt": _paper_receipt, "return_visit": _return_visit,
                   "signoff_link": _signoff_link, "reclassify": page_diagnosis.reclassify,
                   "rma": page_diagnosis.rma}


# -- site forms ----------------------------------------------------------------------------

async def new_ticket(request: web.Request) -> web.StreamResponse:
    """A request taken by phone, WeChat or at the door, written down on the site page."""
    app, engineer = _app(request), _engineer(request)
    site = request.match_info["site"]
    assert app.tickets is not None
    form: MultiDictProxy[Any] = await request.post()
    try:
        device = text_field(form, "device", limit=128) or None
        channel = text_field(form, "channel") or "phone"
        severity = text_field(form, "severity") or "general"
        if channel not in PEOPLE_CHANNELS or severity not in SEVERITIES:
            raise FormError("bad_input", detail=f"{channel} {severity}")
        events = await app.tickets.create(NewTicket(
            site, text_field(form, "description", required="description"),
            text_field(form, "reporter", required="reporter", limit=200), channel,
            severity=severity, device=device, location=text_field(form, "location", limit=400),
            reporter_contact=text_field(form, "contact", limit=200)), engineer.actor)
    except FormError as exc:
        return await site_page(request, error=exc.key, status=422, error_values=exc.values)
    except (TicketError, ValueError) as exc:
        return await site_page(request, error="bad_input", status=422,
                               error_values={"detail": str(exc)})
    raise web.HTTPSeeOther(request.app.router["ticket_page"].url_for(number=events[0].ticket)
                           .with_query({"done": "new_ticket"}))


async def site_return_visit(request: web.Request) -> web.StreamResponse:
    """A periodic return visit of the site as a whole (定期回访)."""
    app, engineer = _app(request), _engineer(request)
    site = request.match_info["site"]
    assert app.tickets is not None
    try:
        visit = return_visit_of(await request.post())
        await FieldWork(app.tickets).return_visit(site, engineer.actor, visit)
    except FormError as exc:
        return await site_page(request, error=exc.key, status=422, error_values=exc.values)
    except (TicketError, ValueError) as exc:
        return await site_page(request, error="bad_input", status=422,
                               error_values={"detail": str(exc)})
    raise web.HTTPSeeOther(request.app.router["site_page"].url_for(id=site)
                           .with_query({"done": "return_visit"}))


async def ticket_photo(request: web.Request) -> web.StreamResponse:
    """A photo of the ticket, served as the checked image it is and nothing else."""
    app = _app(request)
    assert app.tickets is not None
    try:
        photo_id = int(request.match_info["photo"])
        row = await FieldWork(app.tickets).photo_file(request.match_info["number"], photo_id)
        data = await asyncio.to_thread(photos.load, app.config.photos_dir, row.file)
    except (ValueError, UnknownTicket, FileNotFoundError):
        return message_page(request, 404, "not_found", "not_found")
    return web.Response(body=data, headers={
        "Content-Type": row.content_type, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=86400"})


def add_action_routes(web_app: web.Application) -> None:
    web_app.add_routes([
        web.post("/tickets/{number}/act/{action}", ticket_action, name="ticket_action"),
        web.get("/tickets/{number}/photos/{photo}", ticket_photo, name="ticket_photo"),
        web.post("/sites/{site}/tickets", new_ticket, name="site_new_ticket"),
        web.post("/sites/{site}/return-visits", site_return_visit, name="site_return_visit"),
    ])
