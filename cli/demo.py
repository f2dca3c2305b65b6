"""``elvwatch demo``: a small simulated community on loopback, monitored by the daemon.

The devices speak their real protocols (``lab.community``): ONVIF + RTSP cameras, SNMP
switches/NVR/UPS (snmpsim), a Modbus alarm panel, a SIP door station registered at a
SIP server, an MQTT access panel (Mosquitto).  snmpsim comes with the ``demo`` (or
``test``) extra and mosquitto from the system; without them those devices fall back to
plain TCP listeners and the banner says so.

The demo's credentials are random per run and reach the daemon the way real ones do,
through environment variables named in the config; the demo sets them in its own
process only and never prints them.  The read-only commands (status, tickets, report,
brief, link) need none of them: the banner prints how to run them against the demo's
config from another terminal.  The bearer token (API writes, read and sign-off links)
is written to a file of its own in the demo's directory, readable by its owner only.

Checks run every few seconds and a device goes down after two failed runs.  The
injector alternates: one device goes down and comes back (the first about 20 s after
start), then a fault the device reports while still answering (the lobby camera's
ONVIF tamper event, UPS on battery, alarm panel AC failure, door station unregistered,
door forced open), which a built-in rule turns into a ticket within a minute or two
and clears when the fault ends.  Each injection is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.community import Community, Secrets, snmp_available
from elvwatch.lab.devices import LabError
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.web.server import HttpListener

log = logging.getLogger(__name__)

SITE = "demo-garden"
# Loopback blocks the demo may use, tried in turn: another demo (or anything else on
# the same addresses and ports) only moves this one to the next block.
BASES = tuple(f"127.42.{n}." for n in range(10))
INTERVAL = 5.0
TIMEOUT = 2.0
# ONVIF parses its WSDLs on the first call (about a second): a longer budget there.
ONVIF_TIMEOUT = 4.5
FIRST_FAULT_AFTER = 20.0    # seconds: the first device goes down early
FAULT_LASTS = (30.0, 50.0)  # seconds a fault lasts
FAULT_GAP = (15.0, 30.0)    # seconds between the end of one fault and the next
ENV_PREFIX = "ELVWATCH_DEMO_"


def demo_secrets() -> Secrets:
    """Fresh random credentials, put into this process's environment for the config."""
    devices = ("core-sw", "poe-sw-1", "nvr-1", "ups-1")
    made = Secrets(camera_user="admin", camera_password=secrets.token_urlsafe(12),
                   snmp_communities={d: secrets.token_hex(8) for d in devices},
                   mqtt_user="elvwatch-demo", mqtt_password=secrets.token_urlsafe(12))
    os.environ[f"{ENV_PREFIX}CAMERA_PASSWORD"] = made.camera_password
    os.environ[f"{ENV_PREFIX}MQTT_PASSWORD"] = made.mqtt_password
    for device, community in made.snmp_communities.items():
        os.environ[_snmp_env(device)] = community
    return made


def _snmp_env(device: str) -> str:
    return f"{ENV_PREFIX}SNMP_{device.upper().replace('-', '_')}"


def demo_config(listen: str, community: Community,
                token_file: Path | None = None) -> dict[str, Any]:
    s = community.secrets
    credentials: dict[str, Any] = {
        "demo-camera": {"username": s.camera_user,
                        "password_env": f"{ENV_PREFIX}CAMERA_PASSWORD"},
        "demo-mqtt": {"username": s.mqtt_user, "password_env": f"{ENV_PREFIX}MQTT_PASSWORD"},
    }
    for device in s.snmp_communities:
        credentials[f"demo-snmp-{device}"] = {
            "secrets": {"community": {"env": _snmp_env(device)}}}
    devices = community.config_devices(SITE)
    for entry in devices:
        for check in entry["checks"]:
            if check["type"] == "onvif":
                check["timeout"] = ONVIF_TIMEOUT
    config: dict[str, Any] = {
        "http": {"listen": listen} | ({"token_file": str(token_file)} if token_file else {}),
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "scheduler": {"down_after": 2, "jitter": 0.5},
        "credentials": credentials,
        "sites": [{"id": SITE, "name": "阳光花园（演示）", "language": "zh-CN",
                   "contract": {"start": time.strftime("%Y-%m-01"), "months": 12},
                   "contacts": [{"name": "演示 物业代表", "role": "site representative"}]}],
        "devices": devices,
    }
    sources = community.config_sources()
    if sources:
        config["sources"] = sources
    return config


async def _inject_faults(community: Community, rng: random.Random) -> None:
    await asyncio.sleep(FIRST_FAULT_AFTER)
    leaves = community.can_go_down()
    protocol = community.protocol_faults()
    turn = 0
    while True:
        if turn % 2 == 0 or not protocol:
            device = rng.choice(leaves)
            print(f"demo: taking {device} down (its servers stop answering)", flush=True)
            await community.take_down(device)
            await asyncio.sleep(rng.uniform(*FAULT_LASTS))
            print(f"demo: bringing {device} back", flush=True)
            await community.bring_back(device)
        else:
            fault = protocol[(turn // 2) % len(protocol)]
            print(f"demo: injecting on {fault.device}: {fault.description} "
                  f"(rule {fault.rule} opens a ticket)", flush=True)
            await fault.inject()
            await asyncio.sleep(rng.uniform(*FAULT_LASTS))
            print(f"demo: clearing on {fault.device}: {fault.description}", flush=True)
            await fault.clear()
        turn += 1
        await asyncio.sleep(rng.uniform(*FAULT_GAP))


async def run_demo(listen: str = "127.0.0.1:9780", directory: Path | None = None,
                   duration: float = 0.0) -> int:
    workdir = directory or Path(tempfile.mkdtemp(prefix="elvwatch-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A signal while the simulators and the daemon start must still stop them cleanly:
    # snmpsim and Mosquitto are child processes that would outlive us.  App.run_forever
    # installs its own handlers once it runs.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    started = time.monotonic()
    community: Community | None = None
    app: App | None = None
    injector: asyncio.Task[None] | None = None
    try:
        community = await _start_community(demo_secrets())
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(
            demo_config(listen, community, _token_file(workdir)), allow_unicode=True,
            sort_keys=False), encoding="utf-8")
        app = App(load_config(config_path), HttpListener())
        await app.start()
        if stopping.is_set():
            return 0
        _banner(listen, config_path, community, time.monotonic() - started)
        injector = asyncio.create_task(_inject_faults(community, random.Random()))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if duration > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await app.run_forever()
        else:
            await app.run_forever()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if injector is not None:
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await injector
        if app is not None:
            await app.stop()
        if community is not None:
            await community.stop()
    return 0


async def _start_community(made: Secrets) -> Community:
    snmp, mqtt = snmp_available(), MosquittoServer.available()
    failure: Exception | None = None
    for base in BASES:
        community = Community(base, made, snmp=snmp, mqtt=mqtt)
        try:
            await community.start()  # stops what it started when it fails
        except (OSError, LabError, RuntimeError) as exc:
            log.warning("demo: cannot serve the community on %s0/24 (%s); trying the next "
                        "block", base, exc)
            failure = exc
            continue
        if not snmp:
            community.notes.append("snmpsim is not installed (pip install -e '.[demo]'): the "
                                   "switches, NVR and UPS are watched over TCP, not SNMP")
        if not mqtt:
            community.notes.append("mosquitto is not installed (apt-get install mosquitto): "
                                   "the access panel is watched over TCP, not MQTT")
        return community
    raise RuntimeError(f"demo: no free loopback block among {BASES[0]}0 … {BASES[-1]}0 "
                       f"(last error: {failure})")


def _token_file(workdir: Path) -> Path:
    path = workdir / "token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path


def read_only_commands(config_path: Path, today: date) -> list[str]:
    """The commands that read the demo's store (no device secrets needed), as typed."""
    c = f"-c {config_path}"
    first = today.replace(day=1).isoformat()
    return [f"elvwatch status {c}",
            f"elvwatch tickets list {c}",
            f"elvwatch tickets show T-{today.year}-000001 {c}",
            f"elvwatch report sla --site {SITE} --from {first} --to {today.isoformat()} {c}",
            f"elvwatch brief --site {SITE} {c}",
            f"elvwatch link --site {SITE} {c}"]


def _banner(listen: str, config_path: Path, community: Community, took: float) -> None:
    base = f"http://{listen}"
    protocols = sorted({c["type"] for d in community.config_devices(SITE)
                        for c in d["checks"]})
    lines = [f"elvwatch demo: {len(community.members)} simulated devices of site {SITE} "
             f"on {community.base}0/24 (up in {took:.1f}s; checks: {', '.join(protocols)})",
             f"  config     {config_path}  (credentials: random, in this process's "
             f"{ENV_PREFIX}* environment only)",
             f"  devices    {base}/api/v1/devices",
             f"  tickets    {base}/api/v1/tickets",
             f"  metrics    {base}/metrics",
             f"  health     {base}/healthz",
             f"  token      {config_path.parent / 'token'}  (API writes, read and "
             "sign-off links)",
             *(f"  note       {note}" for note in community.notes),
             "From another terminal, these read the demo's store (no device secrets "
             "needed):",
             *(f"  {command}" for command in read_only_commands(config_path, date.today())),
             f"A device is taken down about {FIRST_FAULT_AFTER:.0f}s from now and brought "
             f"back later, then a device reports a fault that opens a ticket; Ctrl-C stops."]
    print("\n".join(lines), flush=True)
