"""``python -m elvwatch.lab camera|snmp|sip``: each serves its protocol until SIGTERM, and the
daemon's own probes get answers from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.probes.base import Check, Credential, Secret, Status, Target
from elvwatch.probes.onvif import probe_onvif
from elvwatch.probes.onvif_options import OnvifOptions
from elvwatch.probes.sip_registration import SipRegistrationOptions, probe_sip_registration
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from tests.test_sip import _free_port

ROOT = Path(__file__).parents[1]
READY_WAIT = 30.0  # seconds; snmpsim indexes first, and CI machines are slow


@contextmanager
def lab(*args: str, ready: str, env: dict[str, str] | None = None) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "elvwatch.lab", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_WAIT
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith(ready):
                break
        assert line.startswith(ready), line
        yield line
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


async def test_lab_camera_answers_onvif_and_its_stream_with_the_env_password() -> None:
    port, rtsp = _free_port(), _free_port()
    with lab("camera", "--onvif-port", str(port), "--rtsp-port", str(rtsp),
             ready="camera lab ready:", env={"ELVWATCH_LAB_CAMERA_PASSWORD": "pw-42"}) as line:
        assert "pw-42" not in line
        cred = Credential("cam", "admin", Secret("pw-42"))
        target = Target("cam", "127.0.0.1", credential=cred)
        obs = await probe_onvif(target, Check("onvif", "onvif", timeout=8, port=port,
                                              options=OnvifOptions()))
        assert (obs.status, obs.error) == (Status.OK, None)
        assert obs.info.get("vendor") == "HIKVISION"


async def test_lab_snmp_serves_the_synthetic_ups() -> None:
    port = _free_port()
    with lab("snmp", "--port", str(port), ready="snmp lab ready:"):
        cred = Credential("ups", secrets={"community": Secret("lab-ups")})
        target = Target("ups", "127.0.0.1", kind="ups", credential=cred)
        obs = await probe_snmp(target, Check("snmp", "snmp", timeout=5, port=port,
                                             options=SnmpOptions()))
        assert obs.status is Status.OK, obs
        assert obs.values["snmp.ups.on_battery"] == 0.0


async def test_lab_sip_registrar_knows_the_users_given_on_the_command_line() -> None:
    port = _free_port()
    with lab("sip", "--listen", f"127.0.0.1:{port}", "--register", "8101",
             ready="sip lab ready:") as line:
        assert "registrar users=8101" in line
        for user, registered in (("8101", 1.0), ("8102", 0.0)):
            params = {"server": "127.0.0.1", "server_port": port, "user": user}
            obs = await probe_sip_registration(
                Target("door", "127.0.0.1"),
                Check("reg", "sip_registration", timeout=2, params=params,
                      options=SipRegistrationOptions.model_validate(params)))
            assert obs.values["sip.registered"] == registered


async def test_one_lab_camera_answers_as_every_camera_on_the_addresses_it_listens_also_on(
) -> None:
    port, rtsp_port = _free_port(), _free_port()
    hosts = ["127.0.0.1", "127.88.0.1", "127.88.0.2"]
    rtsp = RtspResponder(hosts[0], rtsp_port, password="pw")
    camera = OnvifSimulator(hosts[0], port, password="pw", rtsp_port=rtsp_port)
    await rtsp.start()
    await camera.start()
    try:
        for host in hosts[1:]:
            await rtsp.listen_also(host)
            await camera.listen_also(host)
        for host in hosts:
            target = Target(f"cam-{host}", host, credential=Credential("c", "admin",
                                                                       Secret("pw")))
            obs = await probe_onvif(target, Check("onvif", "onvif", timeout=8, port=port,
                                                  options=OnvifOptions()))
            assert (obs.status, obs.error) == (Status.OK, None), host
            assert obs.values["onvif.stream_up"] == 1.0
    finally:
        await camera.stop()
        await rtsp.stop()
    # Stopped, no address answers any more.
    for host in hosts:
        obs = await probe_onvif(Target("cam", host), Check("onvif", "onvif", timeout=2,
                                                           port=port, options=OnvifOptions()))
        assert obs.status is Status.DOWN, host


async def test_lab_camera_refuses_to_listen_also_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback addresses only"):
        await OnvifSimulator("127.0.0.1", _free_port()).listen_also("192.0.2.1")
    with pytest.raises(ValueError, match="loopback addresses only"):
        await RtspResponder("127.0.0.1", 0).listen_also("192.0.2.1")
