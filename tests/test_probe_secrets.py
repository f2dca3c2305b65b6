"""What leaves the process through ``/probe?target=URL``: captured by listeners on
loopback, SNMP over a UDP socket, MQTT, ONVIF and RTSP over TCP (relayed to real lab
peers, so the probe goes as far as it would with a real device).

The daemon runs with every ``ELVWATCH_*`` secret of the command line in its own
environment and with stored credentials; none of them may reach a target that is not
the device (or broker) they belong to.  The same capture, probing the device's own
address, does see its credential — and ``elvwatch probe`` in a person's shell does read
the environment — which shows the capture would catch a leak."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import access_door
from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.web.server import HttpListener
from tests.capture import tcp_capture, udp_capture
from tests.snmp_agents import COMMUNITY, Agent, running_snmpd
from tests.test_daemon import ROOT, first_address, free_port, http_get

ENV_SECRETS = {
    "ELVWATCH_SNMP_COMMUNITY": "env-community-7731",
    "ELVWATCH_SNMP_AUTH_KEY": "env-auth-key-2231",
    "ELVWATCH_SNMP_PRIV_KEY": "env-priv-key-9902",
    "ELVWATCH_MQTT_PASSWORD": "env-mqtt-pw-5150",
    "ELVWATCH_ONVIF_PASSWORD": "env-onvif-pw-8080",
    "ELVWATCH_RTSP_PASSWORD": "env-rtsp-pw-5540",
}
CAMERA_PASSWORD = "cam-pw-3141"
BROKER_PASSWORD = "broker-pw-2718"
STORED = {"ELVWATCH_TEST_SWITCH_COMMUNITY": COMMUNITY,
          "ELVWATCH_TEST_CAMERA_PASSWORD": CAMERA_PASSWORD,
          "ELVWATCH_TEST_BROKER_PASSWORD": BROKER_PASSWORD}
SECRETS = [*ENV_SECRETS.values(), *STORED.values()]


@dataclass
class Daemon:
    app: App
    base: str
    camera_host: str    # the configured camera's address
    attacker: str       # an address no device has

    async def probe(self, target: str, **params: str) -> tuple[int, str]:
        # A silent "broker" holds an MQTT connect until the manager's stop gives up on it.
        return await asyncio.to_thread(
            http_get, f"{self.base}/probe?{urlencode({'target': target, **params})}", 30)


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Agent]:
    with running_snmpd() as agent:
        yield agent


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**ENV_SECRETS, **STORED}.items():
        monkeypatch.setenv(name, value)


def config(path: Path, *, listen: str, camera_host: str, broker_port: int,
           probe: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "http": {"listen": listen},
        "interval": 60, "timeout": 1,
        "credentials": {
            "switch-snmp": {"secrets": {"community": {"env": "ELVWATCH_TEST_SWITCH_COMMUNITY"}}},
            "cam-admin": {"username": "admin", "password_env": "ELVWATCH_TEST_CAMERA_PASSWORD"},
            "broker-login": {"username": "tech",
                             "password_env": "ELVWATCH_TEST_BROKER_PASSWORD"}},
        "sources": {"mqtt": {"brokers": {"site": {"host": "127.0.0.1", "port": broker_port,
                                                  "credentials": "broker-login"}}}},
        "probe": probe or {"modules": {"cams": {"kind": "camera",
                                                "credentials": "cam-admin"}}},
        "sites": [{"id": "lab", "name": "实验小区"}],
        "devices": [
            {"id": "sw-1", "site": "lab", "kind": "switch", "host": "127.0.0.1",
             "credentials": "switch-snmp", "checks": [{"type": "icmp"}]},
            {"id": "cam-1", "site": "lab", "kind": "camera", "host": camera_host,
             "credentials": "cam-admin", "checks": [{"type": "icmp"}]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


@asynccontextmanager
async def daemon(tmp_path: Path, broker_port: int,
                 probe: dict[str, Any] | None = None) -> AsyncIterator[Daemon]:
    port = free_port()
    camera_host, attacker = first_address(), first_address()
    while attacker == camera_host:
        attacker = first_address()
    app = App(load_config(config(tmp_path / "c.yaml", listen=f"127.0.0.1:{port}",
                                 camera_host=camera_host, broker_port=broker_port,
                                 probe=probe)), HttpListener())
    await app.start()
    try:
        yield Daemon(app, f"http://127.0.0.1:{port}", camera_host, attacker)
    finally:
        await app.stop()


def samples(body: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}


def leaked(received: bytes | bytearray) -> list[str]:
    return [s for s in SECRETS if s.encode() in received]


_TOKEN = re.compile(rb"<[^>]*Password[^>]*PasswordDigest[^>]*>([^<]+)</[^>]*Password>.*?"
                    rb"<[^>]*Nonce[^>]*>([^<]+)</[^>]*Nonce>.*?"
                    rb"<[^>]*Created[^>]*>([^<]+)</[^>]*Created>", re.S)


_REQUEST = re.compile(rb"^([A-Z]+) (\S+) RTSP/1\.0\r\n(.*?)\r\n\r\n", re.S | re.M)
_FIELD = re.compile(rb'(\w+)=(?:"([^"]*)"|([^,\s]+))')


def http_digest_passwords(received: bytes | bytearray) -> list[str]:
    """The secrets the Digest ``Authorization`` headers in ``received`` were made from
    (RFC 2617: each response is recomputed with each secret)."""
    def md5(*parts: bytes) -> bytes:
        return hashlib.md5(b":".join(parts)).hexdigest().encode()

    used: set[str] = set()
    for method, _, headers in _REQUEST.findall(bytes(received)):
        for line in headers.split(b"\r\n"):
            if not line.lower().startswith(b"authorization: digest "):
                continue
            f = {k.lower(): a or b for k, a, b in _FIELD.findall(line[22:])}
            for secret in SECRETS:
                ha1 = md5(f[b"username"], f[b"realm"], secret.encode())
                ha2 = md5(method, f[b"uri"])
                parts = [f[b"nonce"], f[b"nc"], f[b"cnonce"], f[b"qop"]] if b"qop" in f \
                    else [f[b"nonce"]]
                if md5(ha1, *parts, ha2) == f[b"response"]:
                    used.add(secret)
    return sorted(used)


def ws_passwords(received: bytes | bytearray) -> list[str]:
    """The secrets a WS-Security UsernameToken in ``received`` was made from: its
    PasswordDigest is Base64(SHA-1(nonce + created + password)), checked against each."""
    used: set[str] = set()
    for digest, nonce, created in _TOKEN.findall(bytes(received)):
        for secret in SECRETS:
            expected = hashlib.sha1(base64.b64decode(nonce) + created + secret.encode())
            if base64.b64encode(expected.digest()) == digest.strip():
                used.add(secret)
    return sorted(used)


async def test_snmp_community_goes_only_to_its_device(
        tmp_path: Path, secrets_in_env: None, snmpd: Agent) -> None:
    async with daemon(tmp_path, free_port()) as d, udp_capture(d.attacker) as listener:
        target = f"snmp://{d.attacker}:{listener.port}"
        for params in ({}, {"module": "switch"}, {"module": "cams"}):
            code, body = await d.probe(target, **params)
            assert code in (400, 403), body
        code, body = await d.probe(f"snmpv3://monitor@{d.attacker}:{listener.port}"
                                   "?auth=sha256&priv=aes128")
        assert code == 400 and "ELVWATCH_SNMP_AUTH_KEY" in body
        await asyncio.sleep(0.5)
        assert leaked(listener.received) == []
        # The switch's own address gets the switch's community (snmpd answers it).
        code, body = await d.probe(f"snmp://127.0.0.1:{snmpd.port}")
        assert code == 200 and samples(body)["elvwatch_probe_success"] == 1.0

        # A person's own `elvwatch probe` reads their environment: the capture sees it.
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "elvwatch.cli", "probe", target,
                             "--timeout", "1"], cwd=ROOT, capture_output=True, text=True,
            timeout=60, env=dict(os.environ))
        assert done.returncode == 1
        assert leaked(listener.received) == [ENV_SECRETS["ELVWATCH_SNMP_COMMUNITY"]]
        assert ENV_SECRETS["ELVWATCH_SNMP_COMMUNITY"] not in done.stdout + done.stderr


@pytest.mark.skipif(not MosquittoServer.available(), reason="needs the mosquitto package")
async def test_mqtt_password_goes_only_to_the_configured_broker(
        tmp_path: Path, secrets_in_env: None) -> None:
    async with MosquittoServer(users={"tech": BROKER_PASSWORD}) as broker, \
            daemon(tmp_path, broker.port) as d:
        door = access_door(broker.host, broker.port, "site/a/door/9", username="tech",
                           password=BROKER_PASSWORD)
        await door.start(heartbeats=False)
        await door.publish("site/a/door/9/held_open", "false", retain=True)
        try:
            async with tcp_capture(d.attacker) as listener:
                code, body = await d.probe(f"mqtt://tech@{d.attacker}:{listener.port}"
                                           "/site/a/door/9?profile=access_control&listen=1")
                assert code == 200, body
                assert listener.connections >= 1 and b"tech" in listener.received
                assert leaked(listener.received) == []
            # The configured broker's own address: its login works.
            code, body = await d.probe(f"mqtt://127.0.0.1:{broker.port}/site/a/door/9"
                                       "?profile=access_control&listen=1")
            assert code == 200 and samples(body)["elvwatch_probe_success"] == 1.0, body
        finally:
            await door.close()


async def test_onvif_and_rtsp_logins_go_only_to_their_camera(
        tmp_path: Path, secrets_in_env: None) -> None:
    async with (RtspResponder(password=CAMERA_PASSWORD) as rtsp,
                OnvifSimulator(password=CAMERA_PASSWORD, rtsp_port=rtsp.port) as camera,
                daemon(tmp_path, free_port()) as d,
                tcp_capture(d.attacker, ("127.0.0.1", camera.port)) as onvif_at_attacker,
                tcp_capture(d.attacker, ("127.0.0.1", rtsp.port)) as rtsp_at_attacker,
                tcp_capture(d.camera_host, ("127.0.0.1", camera.port)) as onvif_at_camera,
                tcp_capture(d.camera_host, ("127.0.0.1", rtsp.port)) as rtsp_at_camera):
        onvif = f"onvif://admin@{d.attacker}:{onvif_at_attacker.port}?stream=0"
        for params in ({}, {"module": "camera"}):
            code, body = await d.probe(onvif, **params)
            assert code == 200, body   # the pre-auth clock only
        code, body = await d.probe(onvif, module="cams")
        assert code == 403 and "probe.allowed_networks" in body
        code, body = await d.probe(f"rtsp://admin@{d.attacker}:{rtsp_at_attacker.port}"
                                   "/Streaming/Channels/101")
        assert code == 200 and samples(body)["elvwatch_probe_success"] == 0.0
        for listener in (onvif_at_attacker, rtsp_at_attacker):
            assert listener.connections >= 1
            assert leaked(listener.received) == []
        # The user named in the URL may try to log in, but with no password of ours.
        assert ws_passwords(onvif_at_attacker.received) == []
        assert http_digest_passwords(rtsp_at_attacker.received) == []

        # The configured camera's own address: its login is used, and works.
        code, body = await d.probe(f"onvif://{d.camera_host}:{onvif_at_camera.port}"
                                   "?stream=0")
        assert code == 200 and samples(body)["elvwatch_probe_success"] == 1.0, body
        assert ws_passwords(onvif_at_camera.received) == [CAMERA_PASSWORD]
        code, body = await d.probe(f"rtsp://{d.camera_host}:{rtsp_at_camera.port}"
                                   "/Streaming/Channels/101")
        assert code == 200 and samples(body)["elvwatch_probe_success"] == 1.0, body
        assert http_digest_passwords(rtsp_at_camera.received) == [CAMERA_PASSWORD]


async def test_allowed_networks_bound_every_target_and_carry_module_credentials(
        tmp_path: Path, secrets_in_env: None) -> None:
    allowed = first_address()
    probe = {"allowed_networks": [f"{allowed}/32"],
             "modules": {"cams": {"kind": "camera", "credentials": "cam-admin"}}}
    async with RtspResponder(password=CAMERA_PASSWORD) as rtsp, \
            daemon(tmp_path, free_port(), probe=probe) as d, \
            tcp_capture(allowed, ("127.0.0.1", rtsp.port)) as inside, \
            tcp_capture(d.attacker, ("127.0.0.1", rtsp.port)) as outside:
        assert d.attacker != allowed
        path = "/Streaming/Channels/101"
        code, body = await d.probe(f"rtsp://{allowed}:{inside.port}{path}", module="cams")
        assert code == 200 and samples(body)["elvwatch_probe_success"] == 1.0, body
        # The module's login, to a network it is allowed in.
        assert http_digest_passwords(inside.received) == [CAMERA_PASSWORD]
        for params in ({"module": "cams"}, {}):
            code, body = await d.probe(f"rtsp://{d.attacker}:{outside.port}{path}",
                                       **params)
            assert code == 403 and "probe.allowed_networks" in body
        assert outside.connections == 0
        # A name is checked by its address, and probed at the address checked.
        code, body = await d.probe(f"tcp://localhost:{free_port()}")
        assert code == 403 and "127.0.0.1" in body
