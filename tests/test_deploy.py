"""The shipped Grafana dashboards and Prometheus files, checked the way they are used.

A real Prometheus (Debian ``prometheus`` package) started on loopback scrapes a real
daemon watching lab devices, evaluates the shipped alert rules itself, and answers every
PromQL expression of every dashboard panel and alert rule through its HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.devices import Fault, LabFleet, lab_checks
from elvwatch.web.server import HttpListener
from tests.test_daemon import PORT, first_address, free_port

ROOT = Path(__file__).parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DATASOURCE_UID = "elvwatch-prometheus"
# What Grafana substitutes for its built-in variables, as it would for a short range.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
DATA_TIMEOUT = 40.0  # seconds for Prometheus to start and hold every family we wait for

# Metric families that do not exist yet (or that the lab below does not produce): an
# expression using one must evaluate without error and, for now, return nothing.
FEATURES = {
    "snmp": ("elvwatch_snmp_",),
    "onvif": ("elvwatch_onvif_", "elvwatch_rtsp_"),
    "mqtt": ("elvwatch_mqtt_",),
}
# Panels waiting for those features: (dashboard uid, panel title) -> features.  When a
# feature lands (its family appears), the test fails naming the panel: move it out of
# this table, and give the lab that feature's devices if the lab lacks them.
WAITING: dict[tuple[str, str], set[str]] = {
    ("elvwatch-cameras", "Streams down"): {"onvif"},
    ("elvwatch-cameras", "Snapshots failing"): {"onvif"},
    ("elvwatch-cameras", "Camera clock offset"): {"onvif"},
    ("elvwatch-cameras", "Largest clock offsets"): {"onvif"},
    ("elvwatch-cameras", "Streams and snapshots"): {"onvif"},
    ("elvwatch-cameras", "RTSP DESCRIBE time"): {"onvif"},
    ("elvwatch-infra", "Ports down (admin up)"): {"snmp"},
    ("elvwatch-infra", "PoE ports"): {"snmp"},
    ("elvwatch-infra", "PoE budget used"): {"snmp"},
    ("elvwatch-infra", "Port errors (top 10)"): {"snmp"},
    ("elvwatch-infra", "Port traffic (top 10)"): {"snmp"},
    ("elvwatch-infra", "UPSes on battery"): {"snmp"},
    ("elvwatch-infra", "UPS status"): {"snmp"},
    ("elvwatch-infra", "UPS battery charge"): {"snmp"},
    ("elvwatch-infra", "UPS output load"): {"snmp"},
    ("elvwatch-infra", "NVR disks"): {"snmp"},
    ("elvwatch-infra", "NVR storage used"): {"snmp"},
    ("elvwatch-infra", "Uptime and reboots"): {"snmp"},
    ("elvwatch-infra", "MQTT devices offline"): {"mqtt"},
    ("elvwatch-infra", "MQTT data age"): {"mqtt"},
}
# How each alert rule behaves against the lab below (one camera down, one bad reload).
ALERT_STATES = {
    "ElvwatchDevicesDown": "pending",
    "ElvwatchSiteMostlyDown": "inactive",
    "ElvwatchScrapeDown": "inactive",
    "ElvwatchSchedulerLagHigh": "inactive",
    "ElvwatchCheckOverruns": "inactive",
    "ElvwatchStoreErrors": "inactive",
    "ElvwatchStoreBacklog": "inactive",
    "ElvwatchConfigReloadFailed": "pending",
    "ElvwatchNotificationsFailed": "inactive",
    "ElvwatchNotifierRetrying": "inactive",
    "ElvwatchTicketSLABreached": "inactive",
    "ElvwatchTicketDueSoon": "inactive",
}
# The lab: kind -> count on the full site "east"; "west" has a camera and a switch.
EAST = {"camera": 3, "nvr": 1, "switch": 1, "ups": 1, "alarm_panel": 1, "access_panel": 1}
WEST = {"camera": 1, "switch": 1}

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_METRIC = re.compile(r"\b(elvwatch_[a-z0-9_]+|process_[a-z_]+|scrape_[a-z_]+|up)\b")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def dashboards() -> Iterator[dict[str, Any]]:
    for path in DASHBOARDS:
        yield json.loads(path.read_text(encoding="utf-8"))


def query_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(_QUOTED.sub('""', expr)))


def features_of(expr: str) -> set[str]:
    return {feature for feature, prefixes in FEATURES.items()
            for name in metric_names(expr) if name.startswith(prefixes)}


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"undefined variable ${name} in {text!r}")
        return values[name]
    return _VARIABLE.sub(one, text)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing; .ci/run installs the prometheus package")
        pytest.skip(f"{name} not installed (Debian package prometheus)")
    return path


# -- static checks -----------------------------------------------------------------------

def test_dashboard_json_is_what_build_py_generates() -> None:
    done = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in DASHBOARDS} == {
        "fleet-overview.json", "site-drilldown.json", "camera-health.json",
        "infrastructure.json", "tickets-sla.json", "self-health.json"}


def test_promtool_accepts_the_alert_rules_and_the_scrape_config() -> None:
    promtool = tool("promtool")
    rules = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True,
                           text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(ALERT_STATES)} rules found" in rules.stdout
    config = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr
    assert {r["alert"] for r in alert_rules()} == set(ALERT_STATES)


def test_provisioning_names_the_datasource_every_panel_uses() -> None:
    prov = GRAFANA / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "elvwatch.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, "prometheus")
    providers = yaml.safe_load((prov / "dashboards" / "elvwatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_dashboards_are_valid_grafana_dashboard_json() -> None:
    uids = set()
    for board in dashboards():
        where = board.get("uid")
        for key in ("uid", "title", "description", "schemaVersion", "panels", "templating",
                    "time", "tags", "annotations", "version"):
            assert key in board, (where, key)
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
        assert board["id"] is None, "provisioned dashboards carry no database id"
        assert board["uid"] not in uids and len(board["uid"]) <= 40
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{where}: duplicate panel ids"
        defined: dict[str, str] = dict(BUILTINS)
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == DATASOURCE_UID, (where, var["name"])
            assert re.fullmatch(r"label_values\((.+), *(\w+)\)", var["query"]), var
            substitute(var["query"], defined)  # may use only variables defined before it
            defined[var["name"]] = "x"
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, (where, panel["title"])
            assert panel["title"].isascii(), "titles are English"
            if panel["type"] == "row":
                assert "targets" not in panel
                continue
            assert re.search(r"[\u4e00-\u9fff]", panel["description"]), (
                f"{where}/{panel['title']}: the description carries the Chinese text")
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            assert panel["targets"], (where, panel["title"])
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                substitute(target["expr"], defined)
    assert len(uids) == 6


def test_waiting_table_matches_the_families_each_panel_uses() -> None:
    using: dict[tuple[str, str], set[str]] = {}
    for board in dashboards():
        for panel in query_panels(board):
            features = set().union(*(features_of(t["expr"]) for t in panel["targets"]))
            if features:
                using[(board["uid"], panel["title"])] = features
    assert using == WAITING


# -- a real Prometheus against a real daemon -------------------------------------------

def lab_config(path: Path, fleet: LabFleet, listen: str) -> Path:
    devices: list[dict[str, Any]] = []
    plan = [("east", kind) for kind, n in EAST.items() for _ in range(n)] + [
        ("west", kind) for kind, n in WEST.items() for _ in range(n)]
    entries = fleet.config_devices("east", "camera", lab_checks("both", PORT))
    for entry, (site, kind) in zip(entries, plan, strict=True):
        devices.append({**entry, "site": site, "kind": kind})
    # The first camera, the one the test stops, answers ping whatever its fault: with
    # only its TCP check it goes down rather than degraded.
    devices[0]["checks"] = lab_checks("tcp", PORT)
    data = {"http": {"listen": listen}, "interval": 0.5, "timeout": 0.5,
            "scheduler": {"down_after": 1, "jitter": 0.0},
            "sites": [{"id": "east", "name": "东区", "contract": {"start": "2026-01-01"}},
                      {"id": "west", "name": "西区", "contract": {"start": "2026-01-01"}}],
            # A receiver, for the notifier health families; routed nothing the lab does.
            "notify": {"receivers": {"noc": {"type": "webhook",
                                             "options": {"url": "http://127.0.0.1:9/hook"}}},
                       "routes": [{"receivers": ["noc"], "events": ["feedback"]}]},
            "devices": devices}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def prometheus_config(daemon: str, probe_target: str) -> dict[str, Any]:
    """The shipped example, pointed at the test daemon, scraping every second."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                        "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    config.pop("alerting")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"elvwatch", "elvwatch_probe_cameras"}
    for job in jobs.values():
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    jobs["elvwatch"]["static_configs"] = [{"targets": [daemon]}]
    probe = jobs["elvwatch_probe_cameras"]
    probe["static_configs"] = [{"targets": [probe_target], "labels": {"site": "east"}}]
    (address,) = [r for r in probe["relabel_configs"] if r["target_label"] == "__address__"]
    address["replacement"] = daemon
    return config


@asynccontextmanager
async def prometheus(tmp: Path, config: dict[str, Any]) -> AsyncIterator[str]:
    binary = shutil.which("prometheus") or tool("prometheus")
    port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (tmp / "prometheus.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            binary, f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn", stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}"
        except BaseException:
            sys.stderr.write((tmp / "prometheus.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class PromAPI:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(self.base + path, params=params,
                                    timeout=aiohttp.ClientTimeout(total=10)) as resp:
            body = await resp.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[Any]:
        data = await self.get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data]

    async def wait(self, expr: str, deadline: float) -> None:
        while True:
            try:
                if await self.query(expr):
                    return
            except (aiohttp.ClientError, AssertionError, ValueError):
                pass  # still starting
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never returned data for {expr}")
            await asyncio.sleep(0.25)


async def resolve_variables(api: PromAPI, board: dict[str, Any]) -> dict[str, str]:
    """A value for each template variable, fetched with its own label_values query."""
    values = dict(BUILTINS)
    for var in board["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), *(\w+)\)",
                             substitute(var["query"], values))
        assert match, var["query"]
        series = await api.get("/api/v1/series", **{"match[]": match.group(1)})
        found = Counter(s[match.group(2)] for s in series if match.group(2) in s)
        assert found, f"{board['uid']}: variable {var['name']} has no values"
        # The value with the most series (the lab's full site, the CCTV system).
        values[var["name"]] = min(found, key=lambda value: (-found[value], value))
    return values


async def test_prometheus_evaluates_every_panel_and_alert_against_the_lab(
        tmp_path: Path) -> None:
    started = time.monotonic()
    fleet = LabFleet(sum(EAST.values()) + sum(WEST.values()), first_address(), [PORT])
    async with fleet:
        listen = f"127.0.0.1:{free_port()}"
        path = lab_config(tmp_path / "elvwatch.yaml", fleet, listen)
        app = App(load_config(path), HttpListener())
        await app.start()
        try:
            victim = fleet.devices[0]  # a camera at east
            await fleet.set_fault(victim.id, Fault.DOWN)
            # A rejected reload: the old config keeps running, the metric says so.
            good = path.read_text(encoding="utf-8")
            path.write_text(good + "bogus_key: 1\n", encoding="utf-8")
            assert not await app.reload()
            healthy = fleet.devices[1]
            config = prometheus_config(listen, f"tcp://{healthy.host}:{PORT}")
            async with (prometheus(tmp_path, config) as base,
                        aiohttp.ClientSession() as session):
                api = PromAPI(session, base)
                deadline = time.monotonic() + DATA_TIMEOUT
                for expr in (f'elvwatch_device_state{{device="{victim.id}",state="down"}} == 1',
                             "elvwatch_config_last_reload_successful == 0",
                             "rate(elvwatch_scheduler_lag_seconds_count[1m]) > 0",
                             "rate(process_cpu_seconds_total[1m])",
                             "elvwatch_icmp_rtt_seconds", "elvwatch_tcp_connect_seconds",
                             'elvwatch_probe_success{job="elvwatch_probe_cameras"}'):
                    await api.wait(expr, deadline)
                await check_probe_job(api, healthy.host)
                await check_rules_evaluated_by_prometheus(api, deadline)
                await check_every_alert_expression(api)
                await check_every_panel_expression(api)
        finally:
            await app.stop()
    assert time.monotonic() - started < 60


async def check_probe_job(api: PromAPI, host: str) -> None:
    """The relabeling of the shipped multi-target job reaches /probe with ?target=."""
    (sample,) = await api.query('elvwatch_probe_success{job="elvwatch_probe_cameras"}')
    assert sample["metric"]["instance"] == f"tcp://{host}:{PORT}"
    assert sample["metric"]["site"] == "east" and sample["value"][1] == "1"


async def check_rules_evaluated_by_prometheus(api: PromAPI, deadline: float) -> None:
    while True:
        groups = (await api.get("/api/v1/rules"))["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert set(rules) == set(ALERT_STATES)
        for name, rule in rules.items():
            assert rule["health"] != "err", (name, rule.get("lastError"))
        states = {name: rule["state"] for name, rule in rules.items()}
        if states == ALERT_STATES and all(r["health"] == "ok" for r in rules.values()):
            return
        if time.monotonic() > deadline:
            assert states == ALERT_STATES
        await asyncio.sleep(0.25)


async def check_every_alert_expression(api: PromAPI) -> None:
    names = set(await api.get("/api/v1/label/__name__/values"))
    for rule in alert_rules():
        expr = rule["expr"]
        result = await api.query(expr)
        features = features_of(expr)
        if features:
            assert not result, f"{rule['alert']}: {features} landed; expect it to fire?"
            continue
        # A quiet rule must still read families that exist, or it could never fire.
        assert metric_names(expr) <= names, (rule["alert"], metric_names(expr) - names)
        assert bool(result) == (ALERT_STATES[rule["alert"]] != "inactive"), (
            rule["alert"], result)


async def check_every_panel_expression(api: PromAPI) -> None:
    names = set(await api.get("/api/v1/label/__name__/values"))
    checked = 0
    for board in dashboards():
        values = await resolve_variables(api, board)
        for panel in query_panels(board):
            for target in panel["targets"]:
                where = f"{board['uid']} / {panel['title']} / {target['refId']}"
                expr = substitute(target["expr"], values)
                result = await api.query(expr)
                checked += 1
                features = features_of(expr)
                if features:
                    assert not result, (
                        f"{where}: {sorted(features)} now has data; move the panel out of "
                        f"WAITING in tests/test_deploy.py")
                    continue
                assert metric_names(expr) <= names, (where, metric_names(expr) - names)
                assert result, f"{where}: no data for {expr}"
    assert checked > 100
