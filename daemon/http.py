"""The one HTTP listener: /metrics, /healthz, /probe, the JSON API and its OpenAPI document.

Reads are open to loopback clients; from anywhere else, and for every write, a bearer
token from ``http.token_file`` is required — except a signed sign-off link on its ticket
(daemon/links.py) and an engineer's signed read link on its site's pages
(daemon/read_links.py, daemon/page_grants.py).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from daemon import api
from daemon.adhoc import UsageError, parse_target, probe_all
from daemon.engineer_access import engineer_access, identify
from daemon.http_alertmanager import add_alertmanager_route
from daemon.http_reports import add_report_routes
from daemon.http_tickets import add_ticket_routes
from daemon.page_actions import add_action_routes
from daemon.page_grants import read_with_grant
from daemon.pages import PAGES_APP, add_page_routes, signed_link_ok
from exporters.exposition import CONTENT_TYPE, Family, render
from exporters.metrics import DeviceSeries, daemon_families, metric_name

if TYPE_CHECKING:
    from daemon.app import App

log = logging.getLogger(__name__)
APP: web.AppKey[App] = web.AppKey("elvwatch", object)  # type: ignore[arg-type]
# The process's own CPU/memory/fds, rendered by prometheus_client (a handful of series).
PROCESS: web.AppKey[CollectorRegistry] = web.AppKey("process", CollectorRegistry)
PROBE_TIMEOUT_MAX = 30.0
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
    token = request.app[APP].config.model.http.token_file
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


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    if PAGES_APP in request.app:
        # An engineer's personal link or its cookie, wherever the request comes from:
        # it says who acts (daemon/engineer_access.py).
        found = await identify(request)
        if isinstance(found, web.StreamResponse):
            return found
        if found is not None:
            answer = await engineer_access(request, handler, found)
            if answer is not None:
                return answer
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    open_read = not write and request.app[APP].config.model.http.loopback_reads
    if ((open_read and _is_loopback(request.remote)) or _token_ok(request)
            or signed_link_ok(request)):  # a site representative's sign-off link
        return await handler(request)
    if request.method in ("GET", "HEAD") and PAGES_APP in request.app:
        # An engineer's read link or its cookie (daemon/page_grants.py); reads only.
        answer = await read_with_grant(request, handler)
        if answer is not None:
            return answer
    return _json({"error": "a bearer token is required"}, status=401)


async def metrics(request: web.Request) -> web.Response:
    body = await metrics_body(request.app[APP]) + generate_latest(request.app[PROCESS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def metrics_body(app: App, slice_devices: int = SCRAPE_SLICE) -> bytes:
    """One scrape, rendered ``slice_devices`` devices at a time with the event loop let
    run in between: at 20,000 devices a scrape is about a second of CPU, which in one
    piece would hold every check due meanwhile."""
    snap = app.snapshot()
    series = DeviceSeries()
    for index, (labels, status) in enumerate(snap.devices, 1):
        series.add(labels, status)
        if index % slice_devices == 0:
            await asyncio.sleep(0)
    return render(chain(series.families(), daemon_families(snap)))


async def healthz(request: web.Request) -> web.Response:
    return _json(_health(request.app[APP]).model_dump())


def _health(app: App) -> api.Health:
    return api.Health(status="ok", devices=len(app.config.devices),
                      checks=app.scheduler.job_count, config_reload_ok=app.reload_ok,
                      store_pending_writes=app.store_pending)


async def devices(request: web.Request) -> web.Response:
    app = request.app[APP]
    site = request.query.get("site")
    state = request.query.get("state")
    out = []
    for device in app.config.devices.values():
        status = app.tracker.devices.get(device.id)
        if status is None or (site and device.config.site != site):
            continue
        if state and status.state.value != state:
            continue
        out.append(api.summary(device, status))
    return _json(api.DeviceList(devices=out).model_dump(mode="json"))


async def device(request: web.Request) -> web.Response:
    app = request.app[APP]
    device_id = request.match_info["id"]
    dev = app.config.devices.get(device_id)
    status = app.tracker.devices.get(device_id)
    if dev is None or status is None:
        return _json({"error": f"no device {device_id!r}"}, status=404)
    return _json(api.detail(dev, status).model_dump(mode="json"))


async def openapi(request: web.Request) -> web.Response:
    return _json(api.openapi_document())


async def reload(request: web.Request) -> web.Response:
    app = request.app[APP]
    if await app.reload():
        return _json(_health(app).model_dump())
    return _json({"error": "config invalid, old config kept: " + "; ".join(app.reload_errors)},
                 status=422)


async def probe(request: web.Request) -> web.Response:
    url = request.query.get("target", "")
    module = request.query.get("module") or None
    try:
        timeout = min(float(request.headers.get(
            "X-Prometheus-Scrape-Timeout-Seconds", "10")) - 0.5, PROBE_TIMEOUT_MAX)
        adhoc = parse_target(url, module, timeout=max(timeout, 0.5))
    except (UsageError, ValueError) as exc:
        return _json({"error": str(exc)}, status=400)
    observations = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
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


def build_web_app(app: App) -> web.Application:
    web_app = web.Application(middlewares=[access], client_max_size=1024 * 1024)
    web_app[APP] = app
    add_ticket_routes(web_app, lambda: app.tickets, lambda: app.silencer)
    add_page_routes(web_app, app)
    add_action_routes(web_app)
    add_report_routes(web_app, app)
    add_alertmanager_route(web_app)
    process = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=process)
    web_app[PROCESS] = process
    web_app.add_routes([
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
        web.get("/probe", probe),
        web.get("/api/v1/devices", devices),
        web.get("/api/v1/devices/{id}", device),
        web.get("/api/v1/openapi.json", openapi),
        web.post("/api/v1/reload", reload),
    ])
    return web_app


async def start_http(app: App, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_web_app(app), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("listening on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
    return runner


async def stop_http(runner: object) -> None:
    assert isinstance(runner, web.AppRunner)
    await asyncio.wait_for(runner.cleanup(), timeout=10)
