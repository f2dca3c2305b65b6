"""The MQTT source wired through the whole daemon: config → App → StateTracker → store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import access_door
from elvwatch.probes.adhoc import UsageError, parse_target, probe_all, probe_result
from elvwatch.probes.mqtt import MqttManager
from elvwatch.rules.state import DeviceState
from elvwatch.tickets.store import Store
from tests.helpers import until

pytestmark = pytest.mark.skipif(not MosquittoServer.available(),
                                reason="needs the Debian package mosquitto (see .ci/run)")


def write_config(path: Path, port: int, *, extra_params: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "http": {"listen": "127.0.0.1:0"},
        "scheduler": {"down_after": 1, "jitter": 0.0},
        "credentials": {"mq": {"username": "elv", "password_env": "ELVWATCH_TEST_MQ_PW"}},
        "sites": [{"id": "lab", "name": "实验小区", "contract": {"start": "2026-01-01"}}],
        "sources": {"mqtt": {
            "brokers": {"site_broker": {"host": "127.0.0.1", "port": port,
                                        "credentials": "mq", "client_id": "elvwatch-test"}},
            "sweep_seconds": 0.05, "reconnect_min_seconds": 0.05}},
        "devices": [{
            "id": "door-7", "site": "lab", "kind": "door_controller", "host": "10.0.0.7",
            "system": "access_control",
            "checks": [{"type": "mqtt", "name": "door", "interval": 30, "timeout": 5,
                        "params": {"broker": "site_broker", "topic": "site/{site}/door/7",
                                   "profile": "access_control", "max_age": 1.5,
                                   **(extra_params or {})}}]}],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path




async def test_daemon_turns_mqtt_messages_into_device_states_and_transitions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_MQ_PW", "pw-" + "x" * 8)
    async with MosquittoServer(users={"elv": "pw-" + "x" * 8}) as broker:
        config = load_config(write_config(tmp_path / "c.yaml", broker.port))
        app = App(config)
        await app.start()
        sim = access_door(broker.host, broker.port, "site/lab/door/7", heartbeat_seconds=0.1,
                          username="elv", password="pw-" + "x" * 8)
        try:
            manager = app.push["mqtt"]
            assert isinstance(manager, MqttManager)
            await until(lambda: manager.broker_stats()[0].connected, what="connected")
            await sim.start()
            devices = app.tracker.devices
            await until(lambda: devices["door-7"].state is DeviceState.UP, what="up")
            sim.silence()
            await until(lambda: devices["door-7"].state is DeviceState.DOWN, what="stale")
            sim.resume()
            await until(lambda: devices["door-7"].state is DeviceState.UP, what="up again")
            await sim.crash()
            await until(lambda: devices["door-7"].state is DeviceState.DOWN, what="LWT")
            assert manager.broker_stats()[0].received > 3
        finally:
            await sim.close()
            await app.stop()
    async with await Store.open(config.storage_url) as store:
        history = await store.transitions("door-7")
    assert [(t.previous, t.state) for t in history] == [
        (DeviceState.UNKNOWN, DeviceState.UP), (DeviceState.UP, DeviceState.DOWN),
        (DeviceState.DOWN, DeviceState.UP), (DeviceState.UP, DeviceState.DOWN)]
    assert "stale: no message for" in history[1].cause
    assert "offline" in history[3].cause


def test_config_rejects_bad_mqtt_params_and_settings_with_their_location(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_MQ_PW", "x")
    path = write_config(tmp_path / "c.yaml", 1883, extra_params={"profile": "nope"})
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"]["mqtt"]["brokers"]["site_broker"]["colour"] = "red"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    text = str(info.value)
    assert "unknown profile 'nope'" in text
    assert "colour" in text and "unknown key" in text


async def test_adhoc_mqtt_url_listens_and_reports_like_a_configured_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_MQTT_PASSWORD", "adhoc-pw")
    async with MosquittoServer(users={"tech": "adhoc-pw"}) as broker:
        pub = access_door(broker.host, broker.port, "site/a/door/9", username="tech",
                          password="adhoc-pw")
        await pub.start(heartbeats=False)
        await pub.publish("site/a/door/9/held_open", "true", retain=True)
        url = (f"mqtt://tech@127.0.0.1:{broker.port}/site/a/door/9"
               "?profile=access_control&listen=1")
        adhoc = parse_target(url, env=os.environ)  # as `elvwatch probe` does
        began = time.monotonic()
        observations = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
        assert time.monotonic() - began < 5
        await pub.close()
    result = probe_result(adhoc.target.device, adhoc.kind, observations)
    assert result["status"] == "degraded"
    obs = result["observations"][0]  # type: ignore[index]
    assert obs["values"]["mqtt.held_open"] == 1.0 and obs["values"]["mqtt.online"] == 1.0
    assert obs["error"] == "door held open"
    assert "adhoc-pw" not in str(result)


def test_adhoc_mqtt_url_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="topic filter"):
        parse_target("mqtt://127.0.0.1:1883")
    with pytest.raises(UsageError, match="unknown profile"):
        parse_target("mqtt://127.0.0.1:1883/x?profile=nope")
    with pytest.raises(UsageError, match="no password"):
        parse_target("mqtt://u:p@127.0.0.1:1883/x")
