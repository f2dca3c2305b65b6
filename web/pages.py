"""HTML pages for engineers and site representatives, served by the daemon's listener.

``/`` overview, ``/sites/{id}``, ``/devices/{id}``, ``/tickets/{number}`` (with the
sign-off form), ``/silences``.  Server-rendered with Jinja2 (autoescape on: device
strings are text, never markup); the CSS and a few lines of JS are inlined under a
per-response CSP nonce, so a page is one request, needs no asset route and no script
other than ours can run.  The JS re-fetches the page itself and swaps its
``data-live`` parts: rendering and escaping stay on the server, and it works through a
sign-off link, which grants the page but never the JSON API.

Access is web/server.py's: reads open on loopback, a bearer token otherwise; the
exceptions are a signed sign-off link (web/links.py), which :func:`signed_link_ok`
accepts for its ticket's page and sign-off POST, and an engineer's read link, which
opens its site's pages for reading (web/page_grants.py).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from elvwatch.tickets.actions import SignOff
from elvwatch.tickets.lifecycle import TicketError, UnknownTicket
from elvwatch.tickets.records import Actor
from elvwatch.tickets.store import StoreError
from elvwatch.web import links, page_views
from elvwatch.web.device_index import DEVICE_INDEX
from elvwatch.web.live_tickets import LIVE_TICKETS, LiveTickets
from elvwatch.web.page_text import LANGUAGES, choose
from elvwatch.web.view import PAGES_VIEW, DaemonView

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
# Status parts refresh this often (seconds); ``?refresh=`` may ask for 2–600, 0 = off.
REFRESH_SECONDS = 15
# The request's key for the engineer acting through a personal link (set by
# web/engineer_access.py, read by the templates to show the forms).
ENGINEER: web.RequestKey[object] = web.RequestKey("elvwatch_engineer", object)
_LINK_PATH = re.compile(r"^/tickets/([A-Za-z0-9_.:-]{1,64})(/signoff)?$")
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
    lstrip_blocks=True)
_CSS = (HERE / "static" / "elvwatch.css").read_text(encoding="utf-8")
_JS = (HERE / "static" / "live.js").read_text(encoding="utf-8")


def signed_link_ok(request: web.Request) -> bool:
    """A valid sign-off link on its own ticket's page (GET) or sign-off (POST)."""
    match = _LINK_PATH.match(request.path)
    if match is None or PAGES_VIEW not in request.app:
        return False
    if request.method not in (("POST",) if match.group(2) else ("GET", "HEAD")):
        return False
    token = links.read_token(request.app[PAGES_VIEW].config.model.http.token_file)
    return links.valid(token, match.group(1), request.query.get("link"))


def _site_language(app: DaemonView, site: str | None) -> str:
    if site and site in app.config.sites:
        return app.config.sites[site].language
    languages = {s.language for s in app.config.sites.values()}
    return "en" if languages == {"en"} else "zh-CN"


def _fmt(request: web.Request, site: str | None) -> page_views.Fmt:
    app = request.app[PAGES_VIEW]
    explicit = request.query.get("lang") or request.cookies.get("lang")
    lang = choose(_site_language(app, site), request.headers.get("Accept-Language"),
                  explicit)
    return page_views.Fmt(lang, page_views.tz_of(app, site), time.time(),
                          page_views.labels_of(app), page_views.checklist_names(app, lang))


def _refresh(request: web.Request) -> int:
    try:
        asked = int(request.query.get("refresh", REFRESH_SECONDS))
    except ValueError:
        return REFRESH_SECONDS
    return 0 if asked <= 0 else max(2, min(asked, 600))


def _render(request: web.Request, template: str, fmt: page_views.Fmt, title: str,
            status: int = 200, **context: Any) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    other = next(lang for lang in LANGUAGES if lang != fmt.lang)
    engineer = request.get(ENGINEER)
    html = _ENV.get_template(template).render(
        f=fmt, t=fmt.t, title=title, css=_CSS, js=_JS, nonce=nonce,
        refresh=_refresh(request), other_lang=other, engineer=engineer,
        # Forms post with the token of the engineer's link (web/engineer_access.py).
        form_query=f"?form={engineer.form}" if engineer is not None else "",
        # The refresh script's request: no style or script, whose nonce would not match.
        live_only=request.headers.get("X-Live-Parts") == "1",
        lang_href=str(request.rel_url.update_query(lang=other)), **context)
    response = web.Response(text=html, status=status, content_type="text/html",
                            charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # keeps ?link= out of Referer
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie("lang", request.query["lang"], max_age=365 * 86400,
                            samesite="Lax", httponly=True)
    return response


def message_page(request: web.Request, status: int, title_key: str, text_key: str,
                 site: str | None = None, back: str | None = None,
                 **values: object) -> web.Response:
    """A page with one notice (and a link ``back``), in the language of ``site``'s pages."""
    fmt = _fmt(request, site)
    return _render(request, "message.html", fmt, fmt.t(title_key), status=status,
                   message=fmt.t(text_key, **values), back=back)


def _missing(request: web.Request, fmt: page_views.Fmt, what: str) -> web.Response:
    return _render(request, "message.html", fmt, fmt.t("not_found"), status=404,
                   message=f"{fmt.t('not_found')}: {what}")


async def overview_page(request: web.Request) -> web.Response:
    fmt = _fmt(request, None)
    view = await page_views.overview(request.app[PAGES_VIEW], request.app[DEVICE_INDEX],
                                     request.app[LIVE_TICKETS])
    return _render(request, "overview.html", fmt, fmt.t("overview"), **view)


async def site_page(request: web.Request, *, error: str | None = None, status: int = 200,
                    error_values: Mapping[str, object] | None = None) -> web.Response:
    """The site's page (also shown again, with ``error``, after a refused site form)."""
    site_id = request.match_info.get("id") or request.match_info["site"]
    fmt = _fmt(request, site_id)
    app = request.app[PAGES_VIEW]
    view = await page_views.site(app, site_id, request.app[DEVICE_INDEX],
                                 request.app[LIVE_TICKETS])
    if view is None:
        return _missing(request, fmt, site_id)
    return _render(request, "site.html", fmt, view["site"].name, status=status, **view,
                   reports=page_views.report_links(app, site_id, fmt),
                   handover=page_views.handover_link(app, site_id, fmt),
                   devices=page_views.site_devices(app, site_id, None),
                   error=error, error_values=error_values or {},
                   done=request.query.get("done"))


async def device_page(request: web.Request) -> web.Response:
    app, device_id = request.app[PAGES_VIEW], request.match_info["id"]
    dev = app.config.devices.get(device_id)
    fmt = _fmt(request, dev.config.site if dev else None)
    view = await page_views.device(app, device_id, fmt, request.app[DEVICE_INDEX],
                                   request.app[LIVE_TICKETS])
    if view is None:
        return _missing(request, fmt, device_id)
    return _render(request, "device.html", fmt, view["cfg"].name or device_id, **view)


async def ticket_page(request: web.Request, *, error: str | None = None,
                      status: int = 200, error_values: Mapping[str, object] | None = None,
                      signoff_url: str | None = None) -> web.Response:
    app, number = request.app[PAGES_VIEW], request.match_info["number"]
    if app.tickets is None:
        raise web.HTTPServiceUnavailable(text="the ticket stage is not running")
    try:
        detail = await app.tickets.get(number)
    except UnknownTicket:
        return _missing(request, _fmt(request, None), number)
    t = detail.ticket
    fmt = _fmt(request, t.site)
    link = request.query.get("link")
    token = links.read_token(app.config.model.http.token_file)
    can_sign = links.valid(token, number, link)
    return _render(
        request, "ticket.html", fmt, t.number, status=status, d=detail, t_=t,
        title_text=fmt.title(t),
        response=fmt.deadline(t.response_due, t.responded_at),
        resolve=fmt.deadline(t.resolve_due, t.resolved_at, t.resolve_to_agree),
        checklist_names=fmt.items,
        site=app.config.sites.get(t.site), can_sign=can_sign, link=link if can_sign else None,
        signed=request.query.get("signed") == "1", error=error,
        error_values=error_values or {}, done=request.query.get("done"),
        field=page_views.field_view(app, detail, request.get(ENGINEER)),
        signoff_url=signoff_url, signoff_hours=72)


async def sign_off(request: web.Request) -> web.Response:
    """The sign-off form's POST: the representative accepts the result (用户已验收)."""
    app, number = request.app[PAGES_VIEW], request.match_info["number"]
    if app.tickets is None:
        raise web.HTTPServiceUnavailable(text="the ticket stage is not running")
    form = await request.post()
    name = str(form.get("name", "")).strip()[:200]
    comment = str(form.get("comment", "")).strip()[:4000]
    try:
        if not name:
            raise ValueError("name")
        await app.tickets.sign_off(number, Actor(name, "link"), SignOff(name, comment))
    except UnknownTicket:
        return _missing(request, _fmt(request, None), number)
    except ValueError:
        return await ticket_page(request, error="name_required", status=422)
    except TicketError:
        # Lifecycle refusals (not resolved yet, device still failing, already signed).
        return await ticket_page(request, error="sign_off_refused", status=409)
    except StoreError:
        return await ticket_page(request, error="unavailable", status=503)
    query = {"signed": "1"} | ({"link": request.query["link"]}
                               if "link" in request.query else {})
    raise web.HTTPSeeOther(request.app.router["ticket_page"].url_for(number=number)
                           .with_query(query))


async def silences_page(request: web.Request) -> web.Response:
    fmt = _fmt(request, None)
    expired = request.query.get("expired") in ("1", "true", "yes")
    rows = page_views.silences(request.app[PAGES_VIEW], expired, fmt.now)
    return _render(request, "silences.html", fmt, fmt.t("silences"), silences=rows,
                   expired=expired)


def _guarded(handler: Handler) -> Handler:
    """A store that is away (PostgreSQL restarting) is a 503 page, not a traceback."""
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreError:
            fmt = _fmt(request, None)
            return _render(request, "message.html", fmt, fmt.t("unavailable"), status=503,
                           message=fmt.t("unavailable"))
    return run


def add_page_routes(web_app: web.Application, app: DaemonView) -> None:
    """Mount the pages on the daemon's aiohttp application (before it starts)."""
    web_app[PAGES_VIEW] = app
    web_app[LIVE_TICKETS] = LiveTickets(app)
    web_app.add_routes([
        web.get("/", _guarded(overview_page), name="overview"),
        web.get("/sites/{id}", _guarded(site_page), name="site_page"),
        web.get("/devices/{id}", _guarded(device_page), name="device_page"),
        web.get("/tickets/{number}", _guarded(ticket_page), name="ticket_page"),
        web.post("/tickets/{number}/signoff", _guarded(sign_off), name="sign_off"),
        web.get("/silences", _guarded(silences_page), name="silences_page"),
    ])
