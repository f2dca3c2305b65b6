"""A site behind a WAN link the test cuts: the poller and the site's devices live in a
Linux network namespace of their own (as root: ``ip netns``, a veth pair as the WAN),
the centre outside it.  Faults during the cut arrive afterwards with their site times,
and the site shows as not reporting meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from elvwatch.lab.devices import tcp_check
from elvwatch.rules.state import StateTransition
from elvwatch.tickets.store import Store
from tests.helpers import until
from tests.multisite_peers import PORT, ROOT, Daemon, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2")]
INTERVAL = 0.5
CUT_SECONDS = 12.0  # the issue's case is 5 minutes: the same path, shorter for the suite
TOKEN = "wan-gate-token-5e1b"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Wan:
    """Namespace ``site`` joined to the host by a veth pair: 10.X.Y.1 (centre side),
    10.X.Y.2 (site side)."""

    def __init__(self) -> None:
        tag = f"{random.randrange(16 ** 6):06x}"
        self.ns, self.outer, self.inner = f"ews{tag}", f"ewo{tag}", f"ewi{tag}"
        net = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.centre_ip, self.site_ip = f"{net}.1", f"{net}.2"

    def __enter__(self) -> Wan:
        ip("netns", "add", self.ns)
        try:
            ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            ip("link", "set", self.inner, "netns", self.ns)
            ip("addr", "add", f"{self.centre_ip}/30", "dev", self.outer)
            ip("link", "set", self.outer, "up")
            ip("netns", "exec", self.ns, "ip", "addr", "add", f"{self.site_ip}/30", "dev",
               self.inner)
            ip("netns", "exec", self.ns, "ip", "link", "set", self.inner, "up")
            ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=10,
                       check=False)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=10,
                       check=False)

    def cut(self) -> None:
        ip("link", "set", self.outer, "down")

    def restore(self) -> None:
        ip("link", "set", self.outer, "up")

    def inside(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *command]


@pytest.fixture
def wan() -> Iterator[Wan]:
    with Wan() as link:
        yield link


def site_call(wan: Wan, url: str, body: Any = None) -> Any:
    """A request from inside the site (the lab's control API, the poller's own API)."""
    script = ("import json, sys, urllib.request\n"
              "data = sys.argv[2].encode() if sys.argv[2] != 'null' else None\n"
              "req = urllib.request.Request(sys.argv[1], data=data, headers="
              "{'Content-Type': 'application/json'})\n"
              "print(urllib.request.urlopen(req, timeout=10).read().decode())\n")
    done = subprocess.run(wan.inside(sys.executable, "-c", script, url, json.dumps(body)),
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def devices() -> list[dict[str, object]]:
    return [{"id": f"lab-{i:05d}", "site": "lab", "kind": "camera", "host": f"127.30.0.{i}",
             "checks": [tcp_check(PORT)]} for i in (1, 2)]


def base(listen: str) -> dict[str, Any]:
    return {"http": {"listen": listen}, "interval": INTERVAL, "timeout": INTERVAL,
            "scheduler": {"down_after": 2, "jitter": 0.0},
            "sites": [{"id": "lab", "name": "实验小区", "contract": {"start": "2026-01-01"}}],
            "devices": devices()}


async def test_a_wan_cut_with_faults_is_caught_up_with_site_times_and_not_reporting_meanwhile(
        tmp_path: Path, wan: Wan) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert(wan.centre_ip).private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "centre.pem"))
    (tmp_path / "gate.token").write_text(TOKEN)
    (tmp_path / "noc.token").write_text("noc-token-1")
    port = free_port()
    (tmp_path / "centre").mkdir()
    (tmp_path / "site").mkdir()
    centre_data = base(f"{wan.centre_ip}:{port}")
    centre_data["http"].update(tls_cert=str(tmp_path / "centre.pem"),
                               tls_key=str(tmp_path / "centre.pem"),
                               token_file=str(tmp_path / "noc.token"))
    centre_data.update(role="centre", centre={"pollers": {"gate": {
        "token": {"file": str(tmp_path / "gate.token")}, "sites": ["lab"]}}})
    poller_data = base("127.0.0.1:9780")  # inside the site's namespace
    poller_data.update(role="poller", poller={
        "id": "gate", "centre_url": f"https://{wan.centre_ip}:{port}",
        "token": {"file": str(tmp_path / "gate.token")}, "ca_file": str(tmp_path / "ca.pem"),
        "sites": ["lab"]})
    for folder, data in (("centre", centre_data), ("site", poller_data)):
        (tmp_path / folder / "c.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))

    centre = Daemon(tmp_path / "centre" / "c.yaml", f"https://{wan.centre_ip}:{port}",
                    trustme_context(tmp_path / "ca.pem"), token="noc-token-1")
    lab = spawn(wan.inside(sys.executable, "-m", "elvwatch.lab", "serve", "--count", "2",
                           "--first", "127.30.0.1", "--ports", str(PORT), "--control",
                           "127.0.0.1:9790"), tmp_path / "site" / "lab.log")
    poller = spawn(wan.inside(sys.executable, "-m", "elvwatch.cli", "run", "-c",
                              str(tmp_path / "site" / "c.yaml")), tmp_path / "site" / "c.log")
    try:
        await centre.start()
        await until(lambda: all_up(centre), "the centre to see the site's devices up", 60)

        wan.cut()
        await until(lambda: not_reporting(centre), "the site not reporting", 30)
        assert set((await centre.states()).values()) == {"unknown"}
        fault = "http://127.0.0.1:9790/devices/lab-00001/fault"
        await asyncio.to_thread(site_call, wan, fault, {"fault": "down"})
        await until(lambda: site_state(wan, "down"), "the poller to see the fault", 30)
        await asyncio.to_thread(site_call, wan, fault, {"fault": "none"})
        await until(lambda: site_state(wan, "up"), "the poller to see it back", 30)
        await asyncio.sleep(max(0.0, CUT_SECONDS - 8))
        assert set((await centre.states()).values()) == {"unknown"}  # still cut off

        wan.restore()
        await until(lambda: all_up(centre), "the site reporting again", 90)
        await until(lambda: buffer_empty(wan), "the poller's buffer to drain", 90)
        await until(lambda: centre.tickets("lab-00001"), "the cut's fault ticketed", 30)
        link = await centre.tickets("lab:link")
        assert [t["rule"] for t in link] == ["site_not_reporting"]
    finally:
        for proc in (poller, lab):
            proc.send_signal(signal.SIGTERM)
        for proc in (poller, lab):
            await asyncio.to_thread(proc.wait, 30)
        await centre.stop()
    at_centre = await transitions(tmp_path / "centre" / "elvwatch.db")
    at_site = await transitions(tmp_path / "site" / "elvwatch.db")
    assert at_centre == at_site  # every transition, to the microsecond, in order
    assert [t.state.value for t in at_centre if t.device == "lab-00001"] == ["up", "down", "up"]


def spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def trustme_context(ca_file: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(ca_file))


async def transitions(db: Path) -> list[StateTransition]:
    async with await Store.open(f"sqlite+aiosqlite:///{db}") as store:
        return await store.transitions()


async def all_up(centre: Daemon) -> bool:
    states = await centre.states()
    return len(states) == 2 and set(states.values()) == {"up"}


async def not_reporting(centre: Daemon) -> bool:
    return await centre.metric("elvwatch_site_reporting", site="lab") == 0


async def site_state(wan: Wan, state: str) -> bool:
    body = await asyncio.to_thread(site_call, wan, "http://127.0.0.1:9780/api/v1/devices")
    return {d["id"]: d["state"] for d in body["devices"]}.get("lab-00001") == state


async def buffer_empty(wan: Wan) -> bool:
    def metric() -> float | None:
        script = ("import urllib.request\nprint(urllib.request.urlopen("
                  "'http://127.0.0.1:9780/metrics', timeout=10).read().decode())\n")
        out = subprocess.run(wan.inside(sys.executable, "-c", script), capture_output=True,
                             text=True, timeout=30, check=True).stdout
        for line in out.splitlines():
            if line.startswith("elvwatch_poller_buffer_observations "):
                return float(line.split()[1])
        return None
    return await asyncio.to_thread(metric) == 0
