"""The one HTTP listener: /metrics, /healthz, /probe, the JSON API and its OpenAPI document.

Reads are open to loopback clients whose Host header is a loopback name or address
(or one of ``http.allowed_hosts``): a web page elsewhere whose name resolves to
127.0.0.1 (DNS rebinding) reaches the listener from loopback too, but says its own name.
From anywhere else, and for every write, a bearer token from ``http.token_file`` is
required — except a signed sign-off link on its ticket (web/links.py) and an
engineer's signed read link on its site's pages (web/read_links.py,
web/page_grants.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from elvwatch.exporters.exposition import CONTENT_TYPE, Family, render
from elvwatch.exporters.metrics import DeviceSeries, ValueNames, daemon_families, metric_name
from elvwatch.probes.adhoc import TimeoutTooShort, UsageError, parse_target, probe_all
from elvwatch.probes.base import bounded
from elvwatch.probes.sharing import sharing
from elvwatch.web import api
from elvwatch.web.alertmanager import add_alertmanager_route
from elvwatch.web.device_api import add_device_routes
from elvwatch.web.engineer_access import engineer_access, identify
from elvwatch.web.ingest import PATH as INGEST_PATH
from elvwatch.web.ingest import add_ingest_route
from elvwatch.web.page_actions import add_action_routes
from elvwatch.web.page_grants import carries_grant, read_with_grant
from elvwatch.web.pages import add_page_routes, signed_link_ok
from elvwatch.web.probe_access import ProbeRefused, grant
from elvwatch.web.reports import add_report_routes
from elvwatch.web.tickets import add_ticket_routes
from elvwatch.web.view import PAGES_VIEW, VIEW, DaemonView

log = logging.getLogger(__name__)
# The process's own CPU/memory/fds, rendered by prometheus_client (a handful of series).
PROCESS: web.AppKey[CollectorRegistry] = web.AppKey("process", CollectorRegistry)
# What scrapes work out about value names, kept for the next scrape.
VALUE_NAMES: web.AppKey[ValueNames] = web.AppKey("value_names", ValueNames)
# /probe timeout problems already logged: each distinct one once.
PROBE_WARNINGS: web.AppKey[set[str]] = web.AppKey("probe_warnings", set)
PROBE_TIMEOUT_MAX = 30.0
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Left of the scrape's timeout for the answer to get back (blackbox_exporter's default).
SCRAPE_OFFSET = 0.5
SCRAPE_SLICE = 1000  # devices rendered between two turns of the event loop

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return remote == "localhost"


def _token_ok(request: web.Request) -> bool:
    token = request.app[VIEW].config.model.http.token_file
    if token is None:
        return False
    try:
        expected = token.read_text(encoding="utf-8").strip()
    except OSError:
        log.error("cannot read http.token_file")
        return False
    given = request.headers.get("Authorization", "")
    return bool(expected) and hmac.compare_digest(given.encode(),
                                                  f"Bearer {expected}".encode())


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a Host header names this listener as a loopback client knows it: a
    loopback address, ``localhost`` (or a name under it), or one of ``allowed``
    (a name, or name:port).  No Host header (HTTP/1.0 tools) is not a browser."""
    if host is None:
        return True
    text = host.strip().lower()
    if text in (a.lower() for a in allowed):
        return True
    if text.startswith("["):
        name = text[1:].partition("]")[0]
    else:
        name, _, port = text.rpartition(":")
        if not name or not port.isdigit():
            name = text
    name = name.rstrip(".")
    if name in (a.lower().rstrip(".") for a in allowed):
        return True
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    if PAGES_VIEW in request.app:
        # An engineer's personal link or its cookie, wherever the request comes from:
        # it says who acts (web/engineer_access.py).
        found = await identify(request)
        if isinstance(found, web.StreamResponse):
            return found
        if found is not None:
            answer = await engineer_access(request, handler, found)
            if answer is not None:
                return answer
    if request.path == INGEST_PATH:  # a poller's own token, checked by the route itself
        return await handler(request)
    settings = request.app[VIEW].config.model.http
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    open_read = not write and settings.loopback_reads and _is_loopback(request.remote)
    host = request.headers.get("Host")
    if open_read and host_allowed(host, settings.allowed_hosts):
        return await handler(request)
    if _token_ok(request) or signed_link_ok(request):  # a representative's sign-off link
        return await handler(request)
    if open_read and not carries_grant(request):
        return _json({"error": f"Host {bounded(host or '', 80)!r} is not a loopback name or "
                               "address: add it to http.allowed_hosts, or send the bearer "
                               "token"}, status=421)
    if request.method in ("GET", "HEAD") and PAGES_VIEW in request.app:
        # An engineer's read link or its cookie (web/page_grants.py); reads only.
        answer = await read_with_grant(request, handler)
        if answer is not None:
            return answer
    return _json({"error": "a bearer token is required"}, status=401)


class Scrapes:
    """The scrape being rendered, shared: a scrape that arrives while another renders
    gets that one's body.  Several readers scraping at once (ten clients reading in
    turn at 20,000 devices) rendered the same 320,000 series side by side, each a few
    tenths of a second of the CPU the checks need."""

    def __init__(self) -> None:
        self._running: asyncio.Task[bytes] | None = None

    async def body(self, view: DaemonView, names: ValueNames) -> bytes:
        task = self._running
        if task is None or task.done():
            task = self._running = asyncio.create_task(metrics_body(view, names=names),
                                                       name="scrape")
            # Retrieved even when every scrape waiting for it went away.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)


SCRAPES: web.AppKey[Scrapes] = web.AppKey("scrapes", Scrapes)


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[SCRAPES].body(request.app[VIEW], request.app[VALUE_NAMES]) \
        + generate_latest(request.app[PROCESS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def metrics_body(app: DaemonView, slice_devices: int = SCRAPE_SLICE,
                       names: ValueNames | None = None) -> bytes:
    """One scrape, rendered ``slice_devices`` devices at a time with the event loop let
    run in between: at 20,000 devices a scrape is about a second of CPU, which in one
    piece would hold every check due meanwhile."""
    snap = app.snapshot()
    series = DeviceSeries(names)
    for index, (labels, status) in enumerate(snap.devices, 1):
        series.add(labels, status)
        if index % slice_devices == 0:
            await asyncio.sleep(0)
    return render(chain(series.families(), daemon_families(snap)))


async def healthz(request: web.Request) -> web.Response:
    return _json(_health(request.app[VIEW]).model_dump())


def _health(app: DaemonView) -> api.Health:
    return api.Health(status="ok", devices=len(app.config.devices),
                      checks=app.job_count, config_reload_ok=app.reload_ok,
                      store_pending_writes=app.store_pending)


async def openapi(request: web.Request) -> web.Response:
    return _json(api.openapi_document())


async def reload(request: web.Request) -> web.Response:
    app = request.app[VIEW]
    if await app.reload():
        return _json(_health(app).model_dump())
    return _json({"error": "config invalid, old config kept: " + "; ".join(app.reload_errors)},
                 status=422)


async def probe(request: web.Request) -> web.Response:
    """One ad-hoc target, answered like a multi-target exporter.  What it may reach and
    with which credentials is decided by web/probe_access.py; the daemon's own
    environment is never a source of secrets here."""
    app = request.app[VIEW]
    url = request.query.get("target", "")
    module = request.query.get("module") or None
    try:
        budget = _probe_budget(request.headers.get(SCRAPE_TIMEOUT_HEADER))
        if budget is not None and not budget > 0:
            return _probe_too_short(request, f"{SCRAPE_OFFSET:g}s of it go to "
                                                  "sending the answer back")
        split = urlsplit(url)
        allowed = await grant(app.config, split.scheme.lower(), split.hostname or "",
                              split.port, module)
        adhoc = parse_target(_at_address(url, split, allowed.address), allowed.kind,
                             timeout=budget, credential=allowed.credential)
    except ProbeRefused as exc:
        return _json({"error": str(exc)}, status=403)
    except TimeoutTooShort as exc:
        return _probe_too_short(request, str(exc))
    except (UsageError, ValueError) as exc:
        return _json({"error": str(exc)}, status=400)
    if budget is not None and adhoc.plan is not None and adhoc.plan.listen_seconds > budget:
        return _probe_too_short(request, f"{adhoc.url!r} listens "
                                              f"{adhoc.plan.listen_seconds:g}s")
    target = adhoc.target
    if allowed.address is not None:
        # Probed at the address the allow-list saw, shown under the name asked for.
        target = dataclasses.replace(target, device=_shown_name(url, target.device,
                                                                allowed.address))
    with sharing(app.shared):
        observations = await probe_all(target, adhoc.checks, adhoc.plan)
    success = Family("elvwatch_probe_success", "1 if every check succeeded.")
    success.add("", 1.0 if all(o.status.value == "ok" for o in observations) else 0.0)
    up = Family("elvwatch_check_up", "1 if the check succeeded.")
    duration = Family("elvwatch_check_duration_seconds", "Check duration.")
    values: dict[str, Family] = {}
    for obs in observations:
        labels = f'check="{obs.check}"'
        up.add(labels, 0.0 if obs.status.value == "down" else 1.0)
        if obs.latency is not None:
            duration.add(labels, obs.latency)
        for name, value in obs.values.items():
            if isinstance(value, float | int):
                values.setdefault(name, Family(metric_name(name), f"Value {name}.")
                                  ).add(labels, float(value))
    body = render([success, up, duration, *values.values()])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _probe_budget(header: str | None) -> float | None:
    """Seconds the probe may take: the scrape's timeout less what the answer needs to
    get back, capped; None without the header (then each scheme's own default)."""
    if header is None:
        return None
    try:
        scrape = float(header)
    except ValueError:
        raise UsageError(f"{SCRAPE_TIMEOUT_HEADER}: {bounded(header, 40)!r} is not a "
                         "number of seconds") from None
    return min(scrape - SCRAPE_OFFSET, PROBE_TIMEOUT_MAX)


def _probe_too_short(request: web.Request, need: str) -> web.Response:
    """The scrape gives the probe less time than it needs: said in the answer (400, so
    the target shows as failing to scrape, not as a device down) and, once per
    distinct message, in the log where the NOC looks."""
    header = request.headers.get(SCRAPE_TIMEOUT_HEADER)
    message = (f"{SCRAPE_TIMEOUT_HEADER} {bounded(header or '', 40)}s is shorter than the "
               f"probe needs: {need}; raise this job's scrape_timeout"
               if header is not None else need)
    told = request.app[PROBE_WARNINGS]
    if message not in told and len(told) < 100:
        told.add(message)
        log.warning("/probe: %s", message)
    return _json({"error": message}, status=400)


def _at_address(url: str, split: SplitResult, address: str | None) -> str:
    """``url`` with its host name replaced by ``address`` (None: unchanged)."""
    if address is None:
        return url
    user, at, _ = split.netloc.rpartition("@")
    host = f"[{address}]" if ":" in address else address
    port = f":{split.port}" if split.port is not None else ""
    return urlunsplit(split._replace(netloc=f"{user}{at}{host}{port}"))


def _shown_name(url: str, device: str, address: str) -> str:
    split = urlsplit(device)
    name = urlsplit(url).hostname or address
    port = f":{split.port}" if split.port is not None else ""
    return urlunsplit(split._replace(netloc=f"{name}{port}"))


def build_web_app(app: DaemonView) -> web.Application:
    web_app = web.Application(middlewares=[access], client_max_size=1024 * 1024)
    web_app[VIEW] = app
    add_device_routes(web_app)  # before the pages: they read its index
    add_ticket_routes(web_app, lambda: app.tickets, lambda: app.silencer)
    add_page_routes(web_app, app)
    add_action_routes(web_app)
    add_report_routes(web_app, app)
    add_alertmanager_route(web_app)
    add_ingest_route(web_app)
    process = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=process)
    web_app[PROCESS] = process
    web_app[PROBE_WARNINGS] = set()
    web_app[VALUE_NAMES] = ValueNames()
    web_app[SCRAPES] = Scrapes()
    web_app.add_routes([
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
        web.get("/probe", probe),
        web.get("/api/v1/openapi.json", openapi),
        web.post("/api/v1/reload", reload),
    ])
    return web_app


class HttpListener:
    """The daemon's one listener at ``http.listen``: opened by the daemon once its checks
    run, closed after they drained and before the store closes (daemon/app.py)."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None

    async def open(self, view: DaemonView, /) -> None:
        """Listen; OSError names ``http.listen`` when the address cannot be taken."""
        settings = view.config.model.http
        host, port = settings.host, settings.port
        context = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(settings.tls_cert, settings.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise OSError(f"http.tls_cert/tls_key: cannot use {settings.tls_cert} with "
                              f"{settings.tls_key}: {exc}") from exc
        runner = web.AppRunner(build_web_app(view), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise OSError(f"http.listen: cannot listen on {shown}: "
                          f"{exc.strerror or exc}") from exc
        self._runner = runner
        log.info("listening on %s://%s:%d/", "https" if context is not None else "http",
                 host if ":" not in host else f"[{host}]", port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.wait_for(runner.cleanup(), timeout=10)
