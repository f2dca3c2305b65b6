"""HTTP control API of a lab fleet, on a loopback address only.

- ``GET /devices`` — ``{"devices": [{id, host, ports, fault, delay, listening}, …]}``
- ``GET /devices/{id}`` — one device, 404 if unknown.
- ``POST /devices/{id}/fault`` with ``{"fault": "down"|"slow"|"flaky"|"none",
  "delay": 2.5}`` — switches the fault and answers the device; 404 for an unknown id,
  400 (``{"error": "…"}``) for a body that is not such an object.
"""

from __future__ import annotations

import ipaddress
import json

from aiohttp import web

from elvwatch.lab.devices import LabFleet, check_delay, parse_fault

FLEET_KEY = web.AppKey("fleet", LabFleet)
# A fault request is a few dozen bytes; refuse anything much larger before parsing it.
MAX_BODY = 4096


class BadRequest(ValueError):
    """The request body cannot be used; the message says why."""


def require_loopback(host: str) -> str:
    """``host`` if it is a loopback IP literal; ValueError otherwise."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"the lab control API binds a loopback IP address, "
                         f"not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the lab control API binds loopback only, not {host}")
    return str(address)


def make_app(fleet: LabFleet) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[FLEET_KEY] = fleet
    app.router.add_get("/devices", list_devices)
    app.router.add_get("/devices/{id}", get_device)
    app.router.add_post("/devices/{id}/fault", set_fault)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def list_devices(request: web.Request) -> web.Response:
    fleet = request.app[FLEET_KEY]
    return web.json_response({"devices": [d.describe() for d in fleet]})


async def get_device(request: web.Request) -> web.Response:
    fleet = request.app[FLEET_KEY]
    try:
        device = fleet.device(request.match_info["id"])
    except KeyError:
        return _error(404, f"no lab device {request.match_info['id']!r}")
    return web.json_response(device.describe())


async def set_fault(request: web.Request) -> web.Response:
    fleet = request.app[FLEET_KEY]
    device_id = request.match_info["id"]
    try:
        device = fleet.device(device_id)
    except KeyError:
        return _error(404, f"no lab device {device_id!r}")
    try:
        fault, delay = _parse_fault_body(await request.read())
    except BadRequest as exc:
        return _error(400, str(exc))
    await device.set_fault(fault, delay)
    return web.json_response(device.describe())


def _parse_fault_body(body: bytes) -> tuple[str, float | None]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest('the body must be JSON like {"fault": "slow", "delay": 2.5}') \
            from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object like {"fault": "down"}')
    unknown = sorted(set(data) - {"fault", "delay"})
    if unknown:
        raise BadRequest(f"unknown keys: {', '.join(unknown)} (known: fault, delay)")
    fault = data.get("fault")
    if not isinstance(fault, str):
        raise BadRequest('"fault" is required: one of none, down, slow, flaky')
    delay = data.get("delay")
    try:
        fault = parse_fault(fault).value
        if delay is not None:
            delay = check_delay(delay)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return fault, delay


class ControlServer:
    """The control API of ``fleet`` listening on ``host:port`` (port 0: any free port)."""

    def __init__(self, fleet: LabFleet, host: str = "127.0.0.1", port: int = 9790) -> None:
        self.host = require_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range")
        self.port = port
        self._runner = web.AppRunner(make_app(fleet), access_log=None)
        self._started = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        """Listen; return the base URL (with the real port when 0 was asked)."""
        await self._runner.setup()
        self._started = True
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        address = self._runner.addresses[0]
        self.port = int(address[1])
        return self.url

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._runner.cleanup()
