"""The JSON shapes of the HTTP API (and of ``status --json``), with their OpenAPI document."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from elvwatch.config.resolved import Device
from elvwatch.rules.state import DeviceStatus

API_VERSION = "1"
# The most devices one page of GET /api/v1/devices holds (?limit=).
MAX_LIMIT = 5000


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    check: str
    type: str
    interval_seconds: float
    status: str
    confirmed_status: str
    since: float | None
    values: dict[str, float | str]
    latency_seconds: float | None
    error: str | None
    time: float | None


class DeviceSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None
    site: str
    system: str
    kind: str
    host: str
    location: str | None
    state: str
    since: float | None
    cause: str


class DeviceDetail(DeviceSummary):
    vendor: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    reported: dict[str, str]
    installed: date | None
    warranty_until: date | None
    depends_on: list[str]
    tags: list[str]
    checks: list[CheckResult]


class DeviceList(BaseModel):
    devices: list[DeviceSummary]
    # Where the next page starts (``?cursor=``); null on the last page or without ``limit``.
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    devices: int
    checks: int
    config_reload_ok: bool
    store_pending_writes: int


class Problem(BaseModel):
    error: str


def summary(device: Device, status: DeviceStatus) -> DeviceSummary:
    return DeviceSummary(**summary_fields(device, status))


def summary_fields(device: Device, status: DeviceStatus) -> dict[str, Any]:
    """A :class:`DeviceSummary` as plain JSON values, for encoding without a model (the
    device list encodes 20,000 of them; a model each was a third of its cost)."""
    cfg = device.config
    return {"id": cfg.id, "name": cfg.name, "site": cfg.site, "system": device.system.value,
            "kind": cfg.kind, "host": cfg.host,
            "location": str(cfg.location) if cfg.location else None,
            "state": status.state.value, "since": status.since, "cause": status.cause}


def detail(device: Device, status: DeviceStatus) -> DeviceDetail:
    cfg = device.config
    checks = []
    for check in device.checks:
        cs = status.checks.get(check.name)
        last = cs.last if cs else None
        checks.append(CheckResult(
            check=check.name, type=check.type, interval_seconds=check.interval,
            status=last.status.value if last else "unknown",
            confirmed_status=cs.confirmed.value if cs else "unknown",
            since=cs.since if cs else None,
            values=dict(last.values) if last else {},
            latency_seconds=last.latency if last else None,
            error=last.error if last else None, time=last.time if last else None))
    return DeviceDetail(
        **summary(device, status).model_dump(), vendor=cfg.vendor, model=cfg.model,
        firmware=cfg.firmware, serial=cfg.serial, reported=dict(status.info),
        installed=cfg.installed, warranty_until=cfg.warranty_until,
        depends_on=list(cfg.depends_on), tags=list(cfg.tags), checks=checks)


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "serialization") for m in (DeviceList, DeviceDetail, Health, Problem)],
        ref_template="#/components/schemas/{model}")

    def ok(model: str, description: str) -> dict[str, Any]:
        return {"description": description, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}}

    problem = ok("Problem", "Error")
    text = {"description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "elvwatch", "version": API_VERSION,
                 "description": "Monitoring of residential weak-current systems."},
        "paths": {
            "/healthz": {"get": {"summary": "Liveness and basic health",
                                 "responses": {"200": ok("Health", "Healthy")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": text}}},
            "/probe": {"get": {
                "summary": "Probe one ad-hoc target now (multi-target exporter style)",
                "parameters": [
                    {"name": "target", "in": "query", "required": True,
                     "schema": {"type": "string"}, "example": "tcp://127.0.0.1:554"},
                    {"name": "module", "in": "query", "required": False,
                     "schema": {"type": "string"}, "description": "device kind"}],
                "responses": {"200": text, "400": problem}}},
            "/api/v1/devices": {"get": {
                "summary": "The devices with their current state, in id order; a page of "
                           "them with limit, the next page with the cursor it gave",
                "parameters": [
                    {"name": "site", "in": "query", "schema": {"type": "string"},
                     "description": "only this site's devices"},
                    {"name": "state", "in": "query", "schema": {
                        "type": "string", "enum": ["up", "degraded", "down", "unknown"]},
                     "description": "only devices in this state"},
                    {"name": "limit", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                     "description": "at most this many devices (all without it); "
                                    "next_cursor then names the next page"},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "next_cursor of the previous page, with the same "
                                    "site and state"},
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"},
                     "description": "the ETag of an earlier answer: 304 if unchanged"}],
                "responses": {"200": ok("DeviceList", "Devices"),
                              "304": {"description": "Unchanged since the ETag given"},
                              "400": problem}}},
            "/api/v1/devices/{id}": {"get": {
                "summary": "One device: archive data, state, last observation of each check",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string"}},
                               {"name": "If-None-Match", "in": "header",
                                "schema": {"type": "string"},
                                "description": "the ETag of an earlier answer: 304 if "
                                               "unchanged"}],
                "responses": {"200": ok("DeviceDetail", "The device"),
                              "304": {"description": "Unchanged since the ETag given"},
                              "404": ok("Problem", "No such device")}}},
            "/api/v1/reload": {"post": {
                "summary": "Reload the config file (like SIGHUP)",
                "security": [{"bearer": []}],
                "responses": {"200": ok("Health", "Reloaded"),
                              "401": problem, "422": problem}}},
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    from elvwatch.web.tickets import openapi_paths

    ticket_paths, ticket_schemas = openapi_paths()
    document["paths"].update(ticket_paths)
    document["components"]["schemas"].update(ticket_schemas)
    from elvwatch.web.alertmanager import openapi_paths as alertmanager_paths

    document["paths"].update(alertmanager_paths())
    from elvwatch.web.reports import openapi_paths as report_paths

    document["paths"].update(report_paths())
    from elvwatch.web.ingest import openapi_paths as ingest_paths

    document["paths"].update(ingest_paths())
    return document
