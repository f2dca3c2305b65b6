"""A centre and site pollers as separate processes on loopback, for the multi-site
tests: HTTPS certificates from a throwaway CA (trustme), tokens in files, each daemon
in its own folder with its own SQLite store."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import trustme
import yaml
from prometheus_client.parser import text_string_to_metric_families

from elvwatch.lab.devices import LabFleet, tcp_check

ROOT = Path(__file__).parent.parent
PORT = 18554  # the lab devices' TCP port
SITE = "lab"
INTERVAL = 0.3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pki:
    """A CA the pollers trust and the centre's certificate for 127.0.0.1."""

    folder: Path
    ca_file: Path = field(init=False)
    cert: Path = field(init=False)
    key: Path = field(init=False)

    def __post_init__(self) -> None:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file, self.cert, self.key = (self.folder / n for n in
                                             ("ca.pem", "centre.pem", "centre.key"))
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        for pem in issued.cert_chain_pems[1:]:
            pem.write_to_path(str(self.cert), append=True)
        issued.private_key_pem.write_to_path(str(self.key))

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def common(fleet: LabFleet, listen: str, down_after: int, interval: float) -> dict[str, Any]:
    return {
        "http": {"listen": listen},
        "interval": interval,
        "timeout": min(interval, 1.0),
        "scheduler": {"down_after": down_after, "jitter": 0.0},
        "sites": [{"id": SITE, "name": "实验小区", "contract": {"start": "2026-01-01"}}],
        "devices": fleet.config_devices(SITE, "camera", [tcp_check(PORT)]),
    }


def write_token(folder: Path, name: str, value: str) -> Path:
    path = folder / f"{name}.token"
    path.write_text(value + "\n", encoding="utf-8")
    return path


def centre_config(folder: Path, fleet: LabFleet, pki: Pki, port: int,
                  pollers: dict[str, str], down_after: int = 2, interval: float = INTERVAL,
                  storage: str | None = None) -> Path:
    """``pollers``: id → token."""
    folder.mkdir(parents=True, exist_ok=True)
    data = common(fleet, f"127.0.0.1:{port}", down_after, interval)
    if storage is not None:
        data["storage"] = {"url": storage}
    data["http"].update(tls_cert=str(pki.cert), tls_key=str(pki.key))
    data["role"] = "centre"
    data["centre"] = {"pollers": {
        name: {"token": {"file": str(write_token(folder, name, token))}, "sites": [SITE]}
        for name, token in pollers.items()}}
    path = folder / "centre.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def poller_config(folder: Path, fleet: LabFleet, pki: Pki, centre_port: int, name: str,
                  token: str, down_after: int = 2, interval: float = INTERVAL,
                  **buffer: object) -> tuple[Path, int]:
    """The config and the poller's own (plain HTTP, loopback) port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data = common(fleet, f"127.0.0.1:{port}", down_after, interval)
    data["role"] = "poller"
    data["poller"] = {"id": name, "centre_url": f"https://127.0.0.1:{centre_port}",
                      "token": {"file": str(write_token(folder, name, token))},
                      "ca_file": str(pki.ca_file), "sites": [SITE], "buffer": buffer}
    path = folder / "poller.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path, port


class Daemon:
    """``elvwatch run`` as a process, its output in a log file beside its config."""

    def __init__(self, config: Path, base: str, context: ssl.SSLContext | None = None,
                 token: str | None = None) -> None:
        self.config = config
        self.base = base
        self.context = context
        self.token = token  # for reads from other than loopback
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "elvwatch.cli", "run", "-c", str(self.config)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.proc = self._spawn()
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await self.get("/healthz"))[0] == 200:
                    return
            except (aiohttp.ClientError, OSError):
                pass
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            await asyncio.sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        proc.send_signal(sig)
        return await asyncio.to_thread(proc.wait, 30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def request(self, method: str, path: str, body: Any = None,
                      token: str | None = None) -> tuple[int, Any]:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session, session.request(
                method, self.base + path, json=body, headers=headers,
                ssl=self.context if self.context is not None else True) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def states(self) -> dict[str, str]:
        _, body = await self.get("/api/v1/devices")
        return {d["id"]: d["state"] for d in body["devices"]}

    async def tickets(self, device: str) -> list[dict[str, Any]]:
        _, body = await self.get(f"/api/v1/tickets?device={device}")
        return list(body["tickets"])

    async def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        _, body = await self.get("/metrics")
        return [(dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(body)
                for s in family.samples if s.name == name]

    async def metric(self, name: str, **labels: str) -> float | None:
        _, body = await self.get("/metrics")
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return None
