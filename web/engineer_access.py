"""What an engineer's personal link (web/engineer_links.py) opens, and its cookie.

Looked at by web/server.py's access check before anything else, on every request:

* ``?grant=E~…`` valid: the answer is a 303 to the same URL without it, setting the
  HttpOnly, SameSite=Lax cookie ``elvwatch_engineer`` (Max-Age = the time the link has
  left; Secure over https, as the read links' cookie);
* the grant or the cookie not good (altered, expired, revoked, the engineer gone from
  the config, the token rotated): a 401 page in the site's language saying which;
* a good cookie names the engineer.  They may read the pages of their sites (all sites
  when the config lists none for them) and post the pages' forms on those sites'
  tickets and sites — each form carries a token derived from the link
  (``?form=``), which a page of another site cannot know.  The JSON API, /metrics and
  the rest still want the bearer token.

The engineer acts as "NAME (ID)" through ``page`` (tickets/records.py Actor).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from elvwatch.config.schema import EngineerConfig
from elvwatch.tickets.notes import actor_of
from elvwatch.tickets.records import Actor
from elvwatch.tickets.store import StoreError
from elvwatch.web import engineer_links, links
from elvwatch.web.engineer_links import EngineerGrant, LinkRefused
from elvwatch.web.page_grants import over_https, scope_of
from elvwatch.web.pages import ENGINEER, message_page
from elvwatch.web.read_links import EVERY_SITE
from elvwatch.web.view import PAGES_VIEW

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUERY = "grant"
# The pages' forms an engineer may post (web/page_actions.py).
FORM_ROUTES = frozenset({"ticket_action", "site_new_ticket", "site_return_visit"})
COOKIE = "elvwatch_engineer"
FORM = "form"


@dataclass(frozen=True, slots=True)
class Engineer:
    config: EngineerConfig
    grant: EngineerGrant
    form: str                        # the forms' token for this link

    @property
    def actor(self) -> Actor:
        return Actor(actor_of(self.config.name, self.config.id), "page")

    def may(self, site: str | None) -> bool:
        """Whether the engineer works at ``site`` (None: every site, the overview)."""
        if not self.config.sites:
            return True
        return site is not None and site in self.config.sites


def engineer_of(request: web.Request) -> Engineer | None:
    found = request.get(ENGINEER)
    return found if isinstance(found, Engineer) else None


async def identify(request: web.Request) -> Engineer | web.StreamResponse | None:
    """The engineer the request comes from, the answer that replaces it (the redirect
    keeping a fresh link in the cookie, or a 401 page), or None when no engineer's link
    is involved."""
    app = request.app[PAGES_VIEW]
    given = request.query.get(QUERY)
    kept = request.cookies.get(COOKIE)
    fresh = engineer_links.is_engineer_grant(given)
    text = given if fresh else kept
    if text is None:
        return None
    token = links.read_token(app.config.model.http.token_file)
    try:
        grant = engineer_links.verify(token, text, time.time())
        if app.store is None:
            raise LinkRefused("revoked")
        await engineer_links.check_live(app.store, grant)
        config = next((e for e in app.config.model.engineers if e.id == grant.engineer), None)
        if config is None:
            raise LinkRefused("revoked")
    except LinkRefused as exc:
        response = message_page(request, 401, f"link_{exc.reason}",
                                f"engineer_link_{exc.reason}_text")
        if not fresh:
            response.del_cookie(COOKIE, path="/")
        return response
    if fresh:
        response = web.Response(status=303, headers={
            "Location": str(request.rel_url.without_query_params(QUERY)),
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        response.set_cookie(COOKIE, grant.text, max_age=max(1, grant.expires - int(time.time())),
                            path="/", httponly=True, samesite="Lax",
                            secure=over_https(request))
        return response
    assert token is not None
    return Engineer(config, grant, engineer_links.form_token(token, grant))


def form_ok(request: web.Request, engineer: Engineer) -> bool:
    token = links.read_token(request.app[PAGES_VIEW].config.model.http.token_file)
    return engineer_links.form_token_ok(token, engineer.grant, request.query.get(FORM))


async def engineer_access(request: web.Request, handler: Handler,
                          engineer: Engineer) -> web.StreamResponse | None:
    """The answer to a request from ``engineer``: the page or form of one of their sites,
    a redirect from the overview to their site, a 403 page — or None for a path no
    engineer's link opens (the usual access rules answer it)."""
    name = request.match_info.route.name
    write = request.method not in ("GET", "HEAD")
    try:
        scope = await scope_of(request)
    except StoreError:
        return message_page(request, 503, "unavailable", "unavailable")
    if scope is None or (write and name not in FORM_ROUTES):
        return None
    if name == "overview" and engineer.config.sites:
        raise web.HTTPSeeOther(str(request.app.router["site_page"].url_for(
            id=engineer.config.sites[0])))
    if not engineer.may(None if scope == EVERY_SITE else scope):
        return message_page(request, 403, "engineer_other_site", "engineer_other_site_text",
                            sites=", ".join(engineer.config.sites))
    if write and not form_ok(request, engineer):
        return message_page(request, 403, "form_expired", "form_expired_text")
    request[ENGINEER] = engineer
    return await handler(request)
