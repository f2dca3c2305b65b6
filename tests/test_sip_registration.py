"""The sip_registration check against the lab registrar, with sipp registering a station."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.lab.sip import SipResponder
from elvwatch.probes.base import Check, Status, Target
from elvwatch.probes.sip_registration import SipRegistrationOptions, probe_sip_registration
from elvwatch.rules.expr import compile_expr
from tests.test_sip import _free_port

REGISTER = Path(__file__).parents[1] / "lab" / "sipp" / "register_uac.xml"
STATION = Target("door-b1", "127.0.0.1", system="intercom", kind="door_station")


def _check(server_port: int, user: str = "8101", transport: str = "udp",
           timeout: float = 2.0, **extra: str) -> Check:
    params: dict[str, str | int] = {"server": "127.0.0.1", "server_port": server_port,
                                    "user": user, "transport": transport, **extra}
    return Check("sip_registration", "sip_registration", timeout=timeout, params=params,
                 options=SipRegistrationOptions.model_validate(params))


@pytest.fixture
async def registrar() -> AsyncIterator[SipResponder]:
    server = SipResponder("127.0.0.1", _free_port(), registrar=True)
    await server.start()
    yield server
    await server.stop()


async def _sipp_register(port: int, user: str, expires: int, tmp_path: Path) -> None:
    binary = shutil.which("sipp")
    if binary is None:
        pytest.fail("sipp not found: install the Debian package 'sip-tester'", pytrace=False)
    proc = await asyncio.create_subprocess_exec(
        binary, f"127.0.0.1:{port}", "-sf", str(REGISTER), "-s", user,
        "-key", "expires", str(expires), "-m", "1", "-i", "127.0.0.1", "-p", "0",
        "-nostdin", "-nd", "-timeout", "10s", "-timeout_error",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode(errors="replace")[-800:]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_station_registered_by_sipp_reads_registered_then_unregistered(
        registrar: SipResponder, transport: str, tmp_path: Path) -> None:
    before = await probe_sip_registration(STATION, _check(registrar.port, transport=transport))
    assert before.status is Status.DEGRADED
    assert before.values["sip.registered"] == 0.0
    assert before.values["sip.status_code"] == 404.0
    assert "8101 not registered at SIP server 127.0.0.1" in (before.error or "")

    await _sipp_register(registrar.port, "8101", 3600, tmp_path)
    after = await probe_sip_registration(STATION, _check(registrar.port, transport=transport))
    assert (after.status, after.error) == (Status.OK, None)
    assert after.values["sip.registered"] == 1.0

    await _sipp_register(registrar.port, "8101", 0, tmp_path)
    gone = await probe_sip_registration(STATION, _check(registrar.port, transport=transport))
    assert gone.values["sip.registered"] == 0.0


async def test_another_users_registration_does_not_count(registrar: SipResponder) -> None:
    registrar.register("8102")
    obs = await probe_sip_registration(STATION, _check(registrar.port, user="8101"))
    assert obs.values["sip.registered"] == 0.0


async def test_480_counts_as_unregistered_and_other_codes_are_unknown() -> None:
    for code, status, registered in ((480, Status.DEGRADED, 0.0),
                                     (407, Status.UNKNOWN, None),
                                     (503, Status.UNKNOWN, None)):
        port = _free_port()
        server = SipResponder("127.0.0.1", port, code, "Lab")
        await server.start()
        try:
            obs = await probe_sip_registration(STATION, _check(port))
        finally:
            await server.stop()
        assert obs.status is status, (code, obs)
        assert obs.values.get("sip.registered") == registered
        assert obs.values["sip.status_code"] == float(code)
        if status is Status.UNKNOWN:
            assert f"answered {code} Lab for 8101; registration unknown" in (obs.error or "")


async def test_silent_server_makes_registration_unknown_not_a_station_fault(
        registrar: SipResponder) -> None:
    registrar.silent = True
    obs = await probe_sip_registration(STATION, _check(registrar.port, timeout=1.0))
    assert obs.status is Status.UNKNOWN
    assert "sip.registered" not in obs.values
    assert "did not answer over udp" in (obs.error or "")


async def test_builtin_intercom_rule_fires_on_what_the_check_reports(
        registrar: SipResponder) -> None:
    # The built-in rule reads the value this check writes; the names must stay aligned.
    import yaml

    rules = yaml.safe_load((Path(__file__).parents[1] / "rules" / "builtin" /
                            "intercom.yaml").read_text(encoding="utf-8"))
    rule = next(r for r in rules if r["id"] == "intercom_unregistered")
    condition = compile_expr(rule["condition"])
    unregistered = await probe_sip_registration(STATION, _check(registrar.port))
    registrar.register("8101")
    registered = await probe_sip_registration(STATION, _check(registrar.port))
    assert condition.evaluate(dict(unregistered.values)) is True
    assert condition.evaluate(dict(registered.values)) is False


def test_options_need_a_server_and_a_valid_user() -> None:
    with pytest.raises(ValidationError, match="user"):
        SipRegistrationOptions.model_validate({"server": "10.0.0.5", "user": "81 01"})
    with pytest.raises(ValidationError, match="server"):
        SipRegistrationOptions.model_validate({"user": "8101"})
    with pytest.raises(ValidationError, match="failure code"):
        SipRegistrationOptions.model_validate({"server": "s", "user": "1", "unregistered": "200"})


def test_config_with_a_bad_registration_check_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "sites:\n  - {id: s1, name: S}\n"
        "devices:\n"
        "  - id: door-b1\n    site: s1\n    kind: door_station\n    host: 127.0.0.1\n"
        "    checks:\n"
        "      - {type: sip_registration, params: {server: 127.0.0.2, user: 8101}}\n"
        "      - {type: sip_registration, name: reg2, params: {server: 127.0.0.2, "
        "user: 8101, colour: red}}\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as info:
        load_config(config, environ={})
    errors = [str(e).replace(str(tmp_path) + "/", "") for e in info.value.errors]
    assert errors == ["config.yaml:10: devices[0].checks[1].params.colour: unknown key"]
