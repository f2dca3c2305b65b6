"""What a read link (web/read_links.py) opens, and the cookie that carries it.

Consulted by web/server.py's access check only for a GET or HEAD that neither comes
from loopback nor holds the bearer token or a sign-off link; loopback and token holders
never see any of this.

* ``?grant=`` valid: the answer is a 303 to the same URL without it, setting the cookie
  ``elvwatch_grant`` (HttpOnly, SameSite=Lax, Path=/, Max-Age = the time the grant has
  left, Secure when the request came over https — directly or, per X-Forwarded-Proto,
  through a TLS proxy; the header is trusted for nothing else, and all it can do is make
  the cookie stricter).  The grant leaves the address bar and the history, and the
  pages' own links (and their refresh script) work by cookie from then on.
* ``?grant=`` or cookie expired or not valid (altered, or the token rotated): a 401 page
  in the site's language saying so and how to get a new link.
* A valid cookie opens a GET of the pages of its scope; a page of another site is a 403
  page.  Which site a path belongs to:

  ======================================  ==============================================
  ``/sites/{id}``, ``/sites/{id}/brief``   that site
  ``/api/v1/sites/{site}/reports/{kind}``  that site (the report links of the site page)
  ``/devices/{id}``                        the device's site in the config
  ``/tickets/{number}``                    the ticket's site in the store
  ``/``, ``/silences``                     every site: a ``--all`` link only (``/`` sends
                                           a one-site link to its site page instead)
  ======================================  ==============================================

  A device or ticket no site owns (unknown id) counts as every site's, so a one-site link
  cannot tell another site's ids from missing ones.  Nothing else is opened by a link:
  the rest of the JSON API, /metrics, /probe and every write still need the bearer token
  (a phone needs pages, scripts have the token); the sign-off form posts only through its
  own sign-off link.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from elvwatch.tickets.lifecycle import UnknownTicket
from elvwatch.tickets.store import StoreError
from elvwatch.web import links, read_links
from elvwatch.web.pages import message_page
from elvwatch.web.read_links import EVERY_SITE, Grant, GrantRefused
from elvwatch.web.view import PAGES_VIEW

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUERY = "grant"
COOKIE = "elvwatch_grant"
# Route name → the match_info key naming the site.
_SITE_ROUTES = {"site_page": "id", "site_brief": "site", "site_report": "site",
                "site_handover": "site", "site_new_ticket": "site",
                "site_return_visit": "site"}
_EVERY_SITE_ROUTES = ("overview", "silences_page")
# Routes naming a ticket: the ticket's site.
_TICKET_ROUTES = ("ticket_page", "ticket_action", "ticket_photo")
# Pages answer a missing grant with a page; other paths keep the API's JSON 401.
_PAGE_ROUTES = frozenset({"site_page", "site_brief", "device_page", "ticket_page",
                          *_EVERY_SITE_ROUTES})


def carries_grant(request: web.Request) -> bool:
    """Whether the request brings a read link or its cookie."""
    return QUERY in request.query or COOKIE in request.cookies


async def read_with_grant(request: web.Request, handler: Handler) -> web.StreamResponse | None:
    """The answer to a GET/HEAD from afar without the token: through a read link, its
    redirect, a 401/403 page — or None when no link is involved and the path is not a
    page (the caller answers with its usual 401)."""
    app = request.app[PAGES_VIEW]
    token = links.read_token(app.config.model.http.token_file)
    given = request.query.get(QUERY)
    if given is not None:
        try:
            return _keep_in_cookie(request, read_links.verify(token, given))
        except GrantRefused as exc:
            return _refused(request, exc)
    kept = request.cookies.get(COOKIE)
    if kept is None:
        if _route(request) in _PAGE_ROUTES:
            return message_page(request, 401, "link_needed", "link_needed_text")
        return None
    try:
        grant = read_links.verify(token, kept)
    except GrantRefused as exc:
        response = _refused(request, exc)
        response.del_cookie(COOKIE, path="/")
        return response
    try:
        scope = await scope_of(request)
    except StoreError:
        return message_page(request, 503, "unavailable", "unavailable")
    if scope is None:
        return None
    if grant.site is not None and _route(request) == "overview":
        return _see_other(str(request.app.router["site_page"].url_for(id=grant.site)))
    if grant.site is None or grant.site == scope:
        return await handler(request)
    site = app.config.sites.get(grant.site)
    return message_page(request, 403, "link_other_site", "link_other_site_text",
                        site=grant.site, name=site.name if site else grant.site,
                        back=str(request.app.router["site_page"].url_for(id=grant.site)))


def _route(request: web.Request) -> str | None:
    return request.match_info.route.name


async def scope_of(request: web.Request) -> str | None:
    """The site the requested path belongs to, EVERY_SITE, or None if no link opens it."""
    name, app = _route(request), request.app[PAGES_VIEW]
    if name in _SITE_ROUTES:
        return request.match_info[_SITE_ROUTES[name]]
    if name in _EVERY_SITE_ROUTES:
        return EVERY_SITE
    if name == "device_page":
        device = app.config.devices.get(request.match_info["id"])
        return device.config.site if device is not None else EVERY_SITE
    if name in _TICKET_ROUTES:
        if app.tickets is None:
            return EVERY_SITE
        try:
            return (await app.tickets.get(request.match_info["number"])).ticket.site
        except UnknownTicket:
            return EVERY_SITE
    return None


def _see_other(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _keep_in_cookie(request: web.Request, grant: Grant) -> web.Response:
    response = _see_other(str(request.rel_url.without_query_params(QUERY)))
    response.set_cookie(COOKIE, grant.text, max_age=max(1, grant.expires - int(time.time())),
                        path="/", httponly=True, samesite="Lax", secure=over_https(request))
    return response


def over_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _refused(request: web.Request, refused: GrantRefused) -> web.Response:
    site = refused.site if refused.site in request.app[PAGES_VIEW].config.sites else None
    return message_page(request, 401, f"link_{refused.reason}", f"link_{refused.reason}_text",
                        site=site)
