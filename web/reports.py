"""Reports over HTTP: ``GET /api/v1/sites/{site}/reports/{kind}``.

The same reports as ``elvwatch report`` (exporters/reports/catalog.py), read from the
running daemon's store: ``kind`` availability | sla | service, ``format`` html | csv |
pdf | json (default json), ``from``/``to`` local dates of the site (both included;
default: this month so far), ``lang`` zh-CN | en (default: the site's language).
Also ``GET /sites/{site}/brief``: the printable pre-visit brief, linked from the site page.
Access is the API's (web/server.py): loopback reads, a bearer token otherwise, or an
engineer's read link for the site (web/page_grants.py).

Reports are computed one at a time (a year of a large site reads every device's
history, and PDF rendering is seconds of CPU), the rendering in a worker thread so the
scheduler keeps its cadence meanwhile.  Errors: 404 unknown site or report, 422 bad
parameters, 503 store away or PDF unavailable — each a JSON ``{"error": …}``.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from elvwatch.config.terms import site_info, site_terms
from elvwatch.exporters.reports import catalog, handover
from elvwatch.exporters.reports.brief import Contact, build_brief
from elvwatch.exporters.reports.render import PdfUnavailable, brief_html
from elvwatch.tickets.store import StoreError
from elvwatch.web.view import REPORTS_VIEW, DaemonView

ONE_AT_A_TIME: web.AppKey[asyncio.Semaphore] = web.AppKey("report_slot", asyncio.Semaphore)
PATH = "/api/v1/sites/{site}/reports/{kind}"
BRIEF_PATH = "/sites/{site}/brief"
HANDOVER_PATH = "/api/v1/sites/{site}/handover"
# A report's (and the brief's) own inline style and nothing else: no script can run in it.
_REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# A contract runs at most 120 months (config/schema.py); a little more for its edges.
MAX_DAYS = 3700
LANGUAGES = ("zh-CN", "en")


def _problem(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def report_url(site: str, kind: str, first: date, last: date, fmt: str,
               lang: str | None = None) -> str:
    """The URL of a report (what the site page links to)."""
    query = f"from={first.isoformat()}&to={last.isoformat()}&format={fmt}"
    return PATH.format(site=site, kind=kind) + "?" + query + (f"&lang={lang}" if lang else "")


def this_month(today: date) -> tuple[date, date]:
    return today.replace(day=1), today


def contract_period(start: date, months: int) -> tuple[date, date]:
    """The contract's days: from ``start`` to the day before the same day ``months``
    later (clamped to that month's end), as tickets/preventive.py counts it."""
    year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
    end = date(year, month + 1, min(start.day, calendar.monthrange(year, month + 1)[1]))
    return start, end - timedelta(days=1)


def _dates(query: Any, today: date) -> tuple[date, date]:
    default_first, default_last = this_month(today)
    try:
        first = date.fromisoformat(query["from"]) if "from" in query else default_first
        last = date.fromisoformat(query["to"]) if "to" in query else default_last
    except ValueError as exc:
        raise ValueError(f"from/to must be dates YYYY-MM-DD: {exc}") from exc
    if last < first:
        raise ValueError(f"to {last} is before from {first}")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"a report covers at most {MAX_DAYS} days")
    return first, last


async def site_report(request: web.Request) -> web.StreamResponse:
    app = request.app[REPORTS_VIEW]
    site_id, kind = request.match_info["site"], request.match_info["kind"]
    site = app.config.sites.get(site_id)
    if site is None:
        return _problem(f"no site {site_id!r}", 404)
    if kind not in catalog.KINDS:
        return _problem(f"no report {kind!r} (reports: {', '.join(catalog.KINDS)})", 404)
    q = request.query
    fmt = q.get("format", "json")
    if fmt not in catalog.FORMATS:
        return _problem(f"format must be one of {', '.join(catalog.FORMATS)}", 422)
    lang = q.get("lang", site.language)
    if lang not in LANGUAGES:
        return _problem(f"lang must be one of {', '.join(LANGUAGES)}", 422)
    timezone = site_terms(app.config)[site_id].timezone
    now = time.time()
    try:
        first, last = _dates(q, datetime.fromtimestamp(now, ZoneInfo(timezone)).date())
    except ValueError as exc:
        return _problem(str(exc), 422)
    if app.store is None:
        return _problem("the store is not open", 503)
    info = site_info(app.config, site_id, lang)
    try:
        async with request.app[ONE_AT_A_TIME]:
            report = await catalog.compute(app.store, kind, info, first, last, now)
            body = await asyncio.to_thread(catalog.encode, report, fmt, info, now)
    except StoreError as exc:
        return _problem(str(exc), 503)
    except PdfUnavailable as exc:
        return _problem(str(exc), 503)
    name = catalog.filename(kind, info, first, last, fmt)
    disposition = "attachment" if fmt == "csv" else "inline"
    headers = {"Content-Type": catalog.MEDIA_TYPES[fmt],
               "Content-Disposition": f'{disposition}; filename="{name}"',
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if fmt == "html":
        # The report's own inline style and nothing else: no script can run in it.
        headers["Content-Security-Policy"] = _REPORT_CSP
    return web.Response(body=body, headers=headers)


async def site_brief(request: web.Request) -> web.StreamResponse:
    """``/sites/{site}/brief``: the printable pre-visit brief (``elvwatch brief --html``),
    in ``?lang=``, the pages' language cookie, or the site's language."""
    app = request.app[REPORTS_VIEW]
    site_id = request.match_info["site"]
    site = app.config.sites.get(site_id)
    if site is None:
        return _problem(f"no site {site_id!r}", 404)
    lang = request.query.get("lang") or request.cookies.get("lang") or site.language
    if lang not in LANGUAGES:
        return _problem(f"lang must be one of {', '.join(LANGUAGES)}", 422)
    if app.store is None:
        return _problem("the store is not open", 503)
    timezone = site_terms(app.config)[site_id].timezone
    contacts = [Contact(c.name, c.role, c.phone, c.email) for c in site.contacts]
    try:
        brief = await build_brief(app.store, site_id, site_name=site.name, language=lang,
                                  contacts=contacts, now=time.time(), timezone=timezone,
                                  address=site.address)
    except StoreError as exc:
        return _problem(str(exc), 503)
    html = brief_html(brief, site_info(app.config, site_id, lang))
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Content-Security-Policy": _REPORT_CSP})


async def site_handover(request: web.Request) -> web.StreamResponse:
    """``/api/v1/sites/{site}/handover``: the contract handover package (zip), as
    ``elvwatch report handover`` writes it; ``pdf=0`` leaves the PDFs out, ``from``/``to``
    default to the contract period."""
    app = request.app[REPORTS_VIEW]
    site_id = request.match_info["site"]
    site = app.config.sites.get(site_id)
    if site is None:
        return _problem(f"no site {site_id!r}", 404)
    lang = request.query.get("lang", site.language)
    if lang not in LANGUAGES:
        return _problem(f"lang must be one of {', '.join(LANGUAGES)}", 422)
    info = site_info(app.config, site_id, lang)
    now = time.time()
    today = datetime.fromtimestamp(now, ZoneInfo(info.timezone)).date()
    query = dict(request.query)
    if site.contract is not None:
        first, last = contract_period(site.contract.start, site.contract.months)
        query.setdefault("from", first.isoformat())
        query.setdefault("to", last.isoformat())
    try:
        first, last = _dates(query, today)
    except ValueError as exc:
        return _problem(str(exc), 422)
    if app.store is None:
        return _problem("the store is not open", 503)
    try:
        async with request.app[ONE_AT_A_TIME]:
            contents = await handover.collect(app.store, info, first, last, now,
                                              photos_dir=app.config.photos_dir)
            body = await asyncio.to_thread(handover.handover_zip, contents, info, now,
                                           pdf=request.query.get("pdf", "1") != "0")
    except (StoreError, PdfUnavailable) as exc:
        return _problem(str(exc), 503)
    name = f"handover-{site_id}-{first.isoformat()}-{last.isoformat()}.zip"
    return web.Response(body=body, headers={
        "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def add_report_routes(web_app: web.Application, app: DaemonView) -> None:
    """Mount the report, handover and brief routes on the daemon's aiohttp application."""
    web_app[REPORTS_VIEW] = app
    web_app[ONE_AT_A_TIME] = asyncio.Semaphore(1)
    web_app.add_routes([web.get(PATH, site_report, name="site_report"),
                        web.get(HANDOVER_PATH, site_handover, name="site_handover"),
                        web.get(BRIEF_PATH, site_brief, name="site_brief")])


def openapi_paths() -> dict[str, Any]:
    """The report and handover paths for web/api.py's OpenAPI document."""
    err = {"description": "Error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    return {PATH: {"get": {
        "summary": "A site's report (设备运行情况记录, SLA, service records and feedback) "
                   "as HTML, CSV, PDF or JSON, like `elvwatch report`",
        "parameters": [
            {"name": "site", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "kind", "in": "path", "required": True,
             "schema": {"type": "string", "enum": list(catalog.KINDS)}},
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "first local day (default: the first of this month)"},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
             "description": "last local day, included (default: today)"},
            {"name": "format", "in": "query",
             "schema": {"type": "string", "enum": list(catalog.FORMATS), "default": "json"}},
            {"name": "lang", "in": "query",
             "schema": {"type": "string", "enum": list(LANGUAGES)},
             "description": "default: the site's language"}],
        "responses": {
            "200": {"description": "The report", "content": {
                media.split(";")[0]: {"schema": {"type": "object"} if fmt == "json"
                                      else {"type": "string",
                                            **({"format": "binary"} if fmt == "pdf" else {})}}
                for fmt, media in catalog.MEDIA_TYPES.items()}},
            "404": err, "422": err, "503": err}}},
        HANDOVER_PATH: {"get": {
            "summary": "The contract handover package (zip: cover, every report, the archive, "
                       "audit trails, state changes, manifest.json), like "
                       "`elvwatch report handover`",
            "parameters": [
                {"name": "site", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
                 "description": "first local day (default: the contract's first)"},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
                 "description": "last local day, included (default: the contract's last)"},
                {"name": "pdf", "in": "query", "schema": {"type": "string", "enum": ["0", "1"],
                                                         "default": "1"}},
                {"name": "lang", "in": "query",
                 "schema": {"type": "string", "enum": list(LANGUAGES)}}],
            "responses": {"200": {"description": "The package", "content": {
                "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                "404": err, "422": err, "503": err}}}}
