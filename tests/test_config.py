"""Config loading: the invalid-config table, the example config, and `elvwatch check`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.probes.registry import known_types

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent

# Each invalid config and the exact errors it must produce (file name, line, key, message).
INVALID = {
    "invalid-unknown-key.yaml": [
        "invalid-unknown-key.yaml:5: devices[0].host: required key is missing",
        "invalid-unknown-key.yaml:8: devices[0].hots: unknown key",
    ],
    "invalid-wrong-type.yaml": [
        "invalid-wrong-type.yaml:8: devices[0].interval: Input should be a valid number, "
        "unable to parse string as a number",
    ],
    "invalid-duplicate-id.yaml": [
        "invalid-duplicate-id.yaml:5: devices[1].id: duplicate device id 'cam-01' "
        "(also devices[0])",
    ],
    "invalid-unknown-site.yaml": [
        "invalid-unknown-site.yaml:4: devices[0].site: unknown site 's2'",
    ],
    "invalid-unknown-credentials.yaml": [
        "invalid-unknown-credentials.yaml:8: devices[0].credentials: "
        "unknown credentials 'camera-admin'",
    ],
    "invalid-unknown-dependency.yaml": [
        "invalid-unknown-dependency.yaml:8: devices[0].depends_on[0]: unknown device 'poe-sw-9'",
    ],
    "invalid-dependency-cycle.yaml": [
        "invalid-dependency-cycle.yaml:4: devices[0].depends_on: dependency cycle: "
        "core → poe → core",
    ],
    "invalid-unknown-check-type.yaml": [
        "invalid-unknown-check-type.yaml:10: devices[0].checks[1].type: "
        f"unknown check type 'telnet' (known: {', '.join(known_types())})",
    ],
    "invalid-yaml-syntax.yaml": [
        "invalid-yaml-syntax.yaml:3: YAML syntax: " + (
            "did not find expected ',' or '}'" if yaml.__with_libyaml__  # libyaml's words
            else "expected ',' or '}', but got ':'"),
    ],
    "invalid-duplicate-key.yaml": [
        "invalid-duplicate-key.yaml:8: host: duplicate key (first given on line 7)",
    ],
    "invalid-missing-host.yaml": [
        "invalid-missing-host.yaml:4: devices[0].host: required key is missing",
    ],
    "invalid-listen.yaml": [
        "invalid-listen.yaml:2: http.listen: Value error, must be HOST:PORT, "
        "e.g. 127.0.0.1:9780",
    ],
    "invalid-secret-env-missing.yaml": [
        "invalid-secret-env-missing.yaml:2: credentials.camera-admin: environment variable "
        "ELVWATCH_TEST_UNSET_PASSWORD (password_env) is not set",
    ],
    "invalid-bad-date.yaml": [
        "invalid-bad-date.yaml:5: sites[0].contract.start: Input should be a valid date or "
        "datetime, month value is outside expected range of 1-12",
    ],
    "invalid-timeout-over-interval.yaml": [
        "invalid-timeout-over-interval.yaml:9: devices[0].checks[0]: check 'tcp_554': "
        "timeout 30s exceeds interval 10s",
    ],
    "invalid-include-missing.yaml": [
        "invalid-include-missing.yaml:2: include[0]: no file matches "
        "'inventory/does-not-exist-*.yaml'",
    ],
    "invalid-unknown-kind.yaml": [
        "invalid-unknown-kind.yaml:4: devices[0].kind: unknown kind 'toaster': give system "
        "and checks, or define it under kinds: (built in: access_panel, alarm_panel, camera, "
        "door_station, intercom_server, nvr, router, switch, ups)",
    ],
    "invalid-severity.yaml": [
        "invalid-severity.yaml:7: sites[0].contract.resolve_hours.critical: Input should be "
        "'general', 'major' or 'emergency'",
    ],
    "invalid-preventive.yaml": [
        "invalid-preventive.yaml:6: sites[0].contract.preventive: Input should be 'monthly' "
        "or 'quarterly'",
    ],
    "invalid-top-level-list.yaml": [
        "invalid-top-level-list.yaml:1: the top level must be a mapping",
    ],
    "invalid-rule-condition.yaml": [
        "invalid-rule-condition.yaml:7: rules[0].condition: Value error, rule "
        "'door_left_open': condition column 25: expected a value, got ')'",
        "invalid-rule-condition.yaml:12: rules[1].for: Value error, '5q' is neither a poll "
        "count nor a duration like 5m, 90s, 1h",
    ],
    "invalid-silence-matcher.yaml": [
        "invalid-silence-matcher.yaml:4: silences[0].matchers.colour: Input should be "
        "'site', 'device', 'system', 'kind' or 'rule'",
    ],
    "invalid-escalation.yaml": [
        "invalid-escalation.yaml:4: sites[0].contract.emergency_response_hours: Input should "
        "be greater than or equal to 0",
        "invalid-escalation.yaml:6: sites[0].escalation[0].email: Value error, "
        "'zhang-at-example.com' is not an email address",
        "invalid-escalation.yaml:9: tickets.auto_close_days: Input should be greater than 0",
    ],
    "invalid-role-missing-section.yaml": [
        "invalid-role-missing-section.yaml:1: role: role poller needs a poller: section",
    ],
    "invalid-role-poller-url.yaml": [
        "invalid-role-poller-url.yaml:4: poller.centre_url: Value error, must be an https:// "
        "URL, e.g. https://noc.example.com:9780 (the poller's token travels over it)",
    ],
    "invalid-role-poller-url-userinfo.yaml": [
        "invalid-role-poller-url-userinfo.yaml:4: poller.centre_url: Value error, must not "
        "carry a user or password: the poller's token (poller.token) is its credential",
    ],
    "invalid-role-poller.yaml": [
        "invalid-role-poller.yaml:7: centre: only for role: centre (role is 'poller')",
        "invalid-role-poller.yaml:6: poller.sites[1]: unknown site 's9'",
        "invalid-role-poller.yaml:13: devices[1].site: site 's2' is not in poller.sites: a "
        "poller probes only the sites it serves",
        "invalid-role-poller.yaml:5: poller.token: environment variable "
        "ELVWATCH_TEST_UNSET_TOKEN (token) is not set",
    ],
    "invalid-role-centre.yaml": [
        "invalid-role-centre.yaml:2: http: give both tls_cert and tls_key, or neither",
        "invalid-role-centre.yaml:3: http.tls_key: no such file: centre.key",
        "invalid-role-centre.yaml:2: http.tls_cert: role centre serves HTTPS only: pollers "
        "send their tokens to it (give tls_cert and tls_key)",
        "invalid-role-centre.yaml:8: centre.pollers.gate-box.sites[1]: unknown site 's3'",
        "invalid-role-centre.yaml:7: centre.pollers.gate-box.token: token file "
        "no-such-gate-box.token: No such file or directory",
    ],
    "invalid-escalation-receiver.yaml": [
        "invalid-escalation-receiver.yaml:7: sites[0].escalate_via[1]: unknown receiver "
        "'mgr-ding' (notify.receivers: noc)",
    ],
    "invalid-mqtt-references.yaml": [
        "invalid-mqtt-references.yaml:6: sources.mqtt.brokers.site_a.credentials: "
        "unknown credentials 'brokr-login'",
        "invalid-mqtt-references.yaml:16: devices[0].checks[0].params.broker: "
        "unknown MQTT broker 'site_c' (sources.mqtt.brokers: site_a, site_b)",
        "invalid-mqtt-references.yaml:17: devices[0].checks[1].params: "
        "name the MQTT broker in params.broker (sources.mqtt.brokers: site_a, site_b)",
    ],
    "invalid-empty.yaml": [
        "invalid-empty.yaml:1: the config is empty: give at least sites: and devices:",
    ],
    "invalid-include-absolute.yaml": [
        "invalid-include-absolute.yaml:3: include[0]: no file matches "
        "'/nonexistent-elvwatch-dir/inventory/*.yaml'",
        "invalid-include-absolute.yaml:4: include[1]: give a file name or a glob pattern",
    ],
    "invalid-not-utf8.yaml": [  # 阳光花园 saved as GBK
        "invalid-not-utf8.yaml:3: not UTF-8 text (byte 0xd1 in column 11: invalid "
        "continuation byte); save the file as UTF-8",
    ],
    "invalid-token-file.yaml": [  # relative: next to the config, like password_file
        "invalid-token-file.yaml:3: http.token_file: cannot read missing.token: No such "
        "file or directory",
    ],
    "invalid-token-empty.yaml": [
        "invalid-token-empty.yaml:2: http.token_file: empty.token is empty: write the "
        "bearer token in it",
    ],
    "invalid-store-url.yaml": [  # and no password in the message
        "invalid-store-url.yaml:2: storage.url: unsupported database 'mysql+aiomysql' "
        "(use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB)",
    ],
    "invalid-store-directory.yaml": [
        "invalid-store-directory.yaml:2: storage.url: directory /nonexistent-elvwatch-dir "
        "does not exist",
    ],
    "invalid-notifier-credentials.yaml": [  # what building the notifiers at start refuses
        "invalid-notifier-credentials.yaml:6: notify.receivers.mail: SMTP login needs both "
        "a username and a password in its credentials",
        "invalid-notifier-credentials.yaml:10: notify.receivers.ops: credentials must give "
        "secrets.key (or a password)",
    ],
    "invalid-probe-modules.yaml": [
        "invalid-probe-modules.yaml:6: probe.modules.cams.credentials: unknown credentials "
        "'camera-admn'",
    ],
    "invalid-probe-networks.yaml": [
        "invalid-probe-networks.yaml:2: probe.allowed_networks[1]: value is not a valid "
        "IPv4 or IPv6 network",
    ],
    "invalid-engineers.yaml": [
        "invalid-engineers.yaml:5: engineers[1].id: duplicate engineer id 'wang'",
        "invalid-engineers.yaml:6: engineers[2].sites[1]: unknown site 'harbour'",
    ],
    "invalid-checklists.yaml": [
        "invalid-checklists.yaml:6: checklists.systems.elevator: Input should be 'cctv', "
        "'access_control', 'intercom', 'alarm', 'network' or 'power'",
        "invalid-checklists.yaml:10: checklists.kinds.ups[0].id: String should match pattern "
        "'^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'",
    ],
    "invalid-checklist-duplicate.yaml": [
        "invalid-checklist-duplicate.yaml:5: checklists.systems.cctv[1].id: duplicate "
        "checklist item 'clean_lens'",
    ],
}


def test_every_invalid_file_is_in_the_table() -> None:
    assert sorted(p.name for p in DATA.glob("invalid-*.yaml")) == sorted(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_config_reports_file_line_and_key(name: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(DATA / name, environ={})
    got = [str(e).replace(str(DATA) + "/", "") for e in info.value.errors]
    assert got == INVALID[name]


# The secrets config.example.yaml names (values made up for the test).
EXAMPLE_ENV = {"ELVWATCH_CAMERA_PASSWORD": "pw", "ELVWATCH_SNMP_COMMUNITY": "sw-community",
               "ELVWATCH_UPS_AUTH_KEY": "auth-key-1", "ELVWATCH_UPS_PRIV_KEY": "priv-key-1",
               "ELVWATCH_MQTT_PASSWORD": "mq-pw", "ELVWATCH_HOOK_SECRET": "hook-key"}


def _example(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.example.yaml", config)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "nvr-admin.password").write_text("nvr-secret\n")
    return config


def test_example_config_loads_with_defaults_applied(tmp_path: Path) -> None:
    config = load_config(_example(tmp_path), environ=EXAMPLE_ENV)
    assert set(config.sites) == {"sunshine-garden"}
    core = config.devices["core-sw"]
    assert core.system.value == "network"
    assert [c.name for c in core.checks] == ["icmp"]
    assert core.checks[0].interval == 60 and core.checks[0].timeout == 5
    cam = config.devices["cam-gate-01"]
    assert [c.name for c in cam.checks] == ["icmp", "rtsp", "tcp_80"]
    assert cam.checks[1].interval == 30 and cam.checks[1].timeout == 3
    assert cam.target.credential is not None
    assert cam.target.credential.password is not None
    assert cam.target.credential.password.value == "pw"
    assert "pw" not in repr(cam.target.credential)
    assert str(cam.config.location) == "南门 / 1 / 入口岗亭上方"
    assert config.storage_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/elvwatch.db"


def test_password_file_is_read_and_never_printed(tmp_path: Path) -> None:
    config = load_config(_example(tmp_path), environ=EXAMPLE_ENV)
    raw = config.model.credentials["nvr-admin"]
    assert raw.password_file is not None
    assert "nvr-secret" not in repr(config.model)


def test_two_line_device_takes_its_kinds_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sites: [{id: s, name: S}]\n"
                    "devices:\n  - {id: d1, site: s, kind: door_station, host: 127.0.0.9}\n")
    device = load_config(path).devices["d1"]
    assert device.system.value == "intercom"
    assert [(c.type, c.port) for c in device.checks] == [("icmp", None), ("sip", 5060)]


def test_included_file_errors_name_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "a.yaml").write_text(
        "devices:\n  - id: cam-1\n    site: s\n    kind: camera\n    host: 127.0.0.1\n"
        "  - id: cam-2\n    site: nowhere\n    kind: camera\n    host: 127.0.0.2\n")
    path = tmp_path / "c.yaml"
    path.write_text("sites: [{id: s, name: S}]\ninclude: ['inv/*.yaml']\n")
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    assert [str(e) for e in info.value.errors] == [
        f"{tmp_path}/inv/a.yaml:7: devices[1].site: unknown site 'nowhere'"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elvwatch.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=ROOT)


def test_check_command_prints_every_error_and_exits_1() -> None:
    result = _cli("check", "-c", str(DATA / "invalid-unknown-key.yaml"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].endswith("devices[0].host: required key is missing")
    assert lines[1].endswith("devices[0].hots: unknown key")
    assert lines[2].startswith("2 error(s) in ")


def test_check_command_prints_one_line_summary_and_exits_0(tmp_path: Path) -> None:
    import os

    env = {**os.environ, **EXAMPLE_ENV}
    result = _cli("check", "-c", str(_example(tmp_path)), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK — 1 sites, 8 devices, 15 checks")
    assert len(result.stdout.strip().splitlines()) == 1


def test_include_of_an_absolute_glob_reads_every_matching_file(tmp_path: Path) -> None:
    inventory = tmp_path / "elsewhere" / "inventory"
    inventory.mkdir(parents=True)
    for n in (1, 2):
        (inventory / f"block-{n}.yaml").write_text(
            f"devices:\n  - {{id: cam-{n}, site: s, kind: camera, host: 127.0.0.{n}}}\n")
    (inventory / "notes.txt").write_text("not yaml")
    path = tmp_path / "conf" / "c.yaml"
    path.parent.mkdir()
    path.write_text(f"sites: [{{id: s, name: S}}]\ninclude: ['{inventory}/*.yaml']\n")
    config = load_config(path)
    assert sorted(config.devices) == ["cam-1", "cam-2"]
    assert config.files[1:] == (inventory / "block-1.yaml", inventory / "block-2.yaml")


def test_relative_token_file_is_next_to_the_config_not_the_working_directory(
        tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "http.token").write_text("tok-123\n")
    path = tmp_path / "c.yaml"
    path.write_text("http: {token_file: secrets/http.token}\nsites: [{id: s, name: S}]\n")
    elsewhere = _cli("check", "-c", str(path))  # run from the repository root
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert load_config(path).model.http.token_file == tmp_path / "secrets" / "http.token"
    (tmp_path / "secrets" / "http.token").unlink()
    missing = _cli("check", "-c", str(path))
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == (
        f"{path}:1: http.token_file: cannot read {tmp_path}/secrets/http.token: "
        "No such file or directory")


# Configs `check` refuses that `run` used to start with (or die on with a traceback).
RUN_REFUSES = ["invalid-notifier-credentials.yaml", "invalid-store-url.yaml",
               "invalid-store-directory.yaml",
               "invalid-token-file.yaml", "invalid-include-absolute.yaml",
               "invalid-empty.yaml", "invalid-not-utf8.yaml"]


@pytest.mark.parametrize("name", RUN_REFUSES)
def test_run_refuses_what_check_refuses_with_the_same_errors_and_no_traceback(
        name: str) -> None:
    check = _cli("check", "-c", str(DATA / name))
    run = _cli("run", "-c", str(DATA / name))
    assert check.returncode == run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    expected = [line.replace(str(DATA) + "/", "") for line in check.stderr.splitlines()]
    assert expected[:-1] == INVALID[name]
    assert run.stderr.splitlines() == check.stderr.splitlines()
