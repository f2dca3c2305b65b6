"""The MQTT source against a real Mosquitto started by each test on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import SimDevice, access_door
from elvwatch.probes.base import Check, Credential, Observation, Reason, Secret, Status, Target
from elvwatch.probes.mqtt import MqttCheckOptions, MqttManager, MqttSettings
from elvwatch.probes.mqtt_payload import compile_path, walk
from elvwatch.probes.mqtt_profiles import TopicTrie
from tests.helpers import until

pytestmark = pytest.mark.skipif(not MosquittoServer.available(),
                                reason="needs the Debian package mosquitto (see .ci/run)")


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoServer]:
    async with MosquittoServer() as server:
        yield server


class Seen:
    """Observations emitted by a manager, latest per (device, check)."""

    def __init__(self) -> None:
        self.all: list[Observation] = []

    def __call__(self, obs: Observation) -> None:
        self.all.append(obs)

    def last(self, device: str) -> Observation | None:
        return next((o for o in reversed(self.all) if o.device == device), None)


def settings(server: MosquittoServer, **extra: Any) -> MqttSettings:
    broker: dict[str, Any] = {"host": server.host, "port": server.port}
    broker.update(extra.pop("broker", {}))
    return MqttSettings.model_validate({
        "brokers": {"lab": broker}, "sweep_seconds": 0.05, "reconnect_min_seconds": 0.05,
        "reconnect_max_seconds": 0.3, **extra})


def check(name: str = "mqtt", interval: float = 60.0, **params: Any) -> Check:
    return Check(name, "mqtt", interval=interval, params=params,
                 options=MqttCheckOptions.model_validate(params))


async def started(server: MosquittoServer, targets: list[tuple[Target, Check]],
                  seen: Seen, credentials: dict[str, Credential] | None = None,
                  **extra: Any) -> MqttManager:
    manager = MqttManager(settings(server, **extra), credentials or {}, seen)
    await manager.start()
    await manager.update(targets)
    await until(lambda: all(c.connected for c in manager.brokers.values()),
                what="broker connected")
    return manager


async def publisher(server: MosquittoServer, name: str = "pub") -> SimDevice:
    device = SimDevice(server.host, server.port, name)
    await device.start(heartbeats=False)
    return device


# -- units: topic matching and JSON paths ---------------------------------------------
def test_topic_trie_matches_wildcards_like_a_broker() -> None:
    trie: TopicTrie[str] = TopicTrie()
    for f in ("site/+/door/3/state", "site/a/#", "site/a/door/3/state", "#", "+/x"):
        trie.add(f, f)
    assert sorted(trie.match("site/a/door/3/state")) == sorted(
        ["site/+/door/3/state", "site/a/#", "site/a/door/3/state", "#"])
    assert trie.match("site/b/door/4/state") == ["#"]
    assert sorted(trie.match("site/a")) == ["#", "site/a/#"]  # '#' includes the parent
    assert trie.match("$SYS/x") == []  # wildcards at level one skip $-topics


def test_json_path_walks_objects_and_arrays() -> None:
    doc = json.loads('{"a": {"b": [{"c": 5}]}}')
    assert walk(doc, compile_path("a.b[0].c")) == 5
    with pytest.raises(Exception, match="missing_path"):
        walk(doc, compile_path("a.b[3].c"))


def test_check_options_reject_unknown_profile_and_bad_filters() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        MqttCheckOptions.model_validate({"topic": "x", "profile": "nope"})
    with pytest.raises(ValueError, match="'#' must be"):
        MqttCheckOptions.model_validate({"topic": "site/#/door"})
    with pytest.raises(ValueError, match="extra"):
        MqttCheckOptions.model_validate({"topic": "x", "colour": "red"})


# -- against Mosquitto --------------------------------------------------------------------
async def test_wildcard_topic_maps_messages_to_the_right_device_only(
        broker: MosquittoServer) -> None:
    seen = Seen()
    door3, door4 = Target("door-3", "h", site="a"), Target("door-4", "h", site="a")
    manager = await started(broker, [
        (door3, check(topic="site/+/door/3/state", value="mqtt.door_open")),
        (door4, check(topic="site/{site}/door/4/state", value="mqtt.door_open"))], seen)
    pub = await publisher(broker)
    try:
        await pub.publish("site/b/door/3/state", "true")
        await pub.publish("site/x/door/4/state", "1")  # {site} is 'a': not door-4's
        await pub.publish("site/a/door/4/state", "false")
        await until(lambda: seen.last("door-4") is not None, what="door-4")
        # A filter with a wildcard keeps one value per topic (labelled with it).
        door3_values = seen.last("door-3").values  # type: ignore[union-attr]
        assert door3_values == {'mqtt.door_open{topic="site/b/door/3/state"}': 1.0,
                                "mqtt.age_seconds": door3_values["mqtt.age_seconds"]}
        assert seen.last("door-4").values["mqtt.door_open"] == 0.0  # type: ignore[union-attr]
        assert [o.device for o in seen.all] == ["door-3", "door-4"]
    finally:
        await pub.close()
        await manager.stop()


async def test_json_paths_read_frigate_stats_and_zigbee2mqtt_availability(
        broker: MosquittoServer) -> None:
    seen = Seen()
    camera = Target("cam-front", "h")
    contact = Target("door-z", "h")
    manager = await started(broker, [
        (camera, check(topic="frigate", profile="frigate", key="front_door")),
        (contact, check(topic="zigbee2mqtt/{device}", profile="zigbee2mqtt"))], seen)
    pub = await publisher(broker)
    try:
        stats: dict[str, Any] = {
            "cameras": {"front_door": {"camera_fps": 5.1, "detection_fps": 0.5},
                        "back": {"camera_fps": 0.0}},
            "service": {"uptime": 9}}
        await pub.publish("frigate/stats", json.dumps(stats))
        await pub.publish("zigbee2mqtt/door-z", json.dumps(
            {"contact": False, "battery": 7, "linkquality": 90}))
        await until(lambda: seen.last("door-z") is not None, what="zigbee state")
        cam = seen.last("cam-front")
        assert cam is not None and cam.status is Status.OK
        assert cam.values["mqtt.camera_fps"] == 5.1 and cam.values["mqtt.detection_fps"] == 0.5
        door = seen.last("door-z")
        assert door is not None and door.values["mqtt.door_open"] == 1.0  # contact=false
        assert door.status is Status.DEGRADED and door.error == "battery low"
        # Availability: the JSON form, then the legacy plain word.
        await pub.publish("zigbee2mqtt/door-z/availability", '{"state":"offline"}')
        await until(lambda: seen.last("door-z").values.get("mqtt.online") == 0.0,  # type: ignore[union-attr]
                    what="json offline")
        await pub.publish("zigbee2mqtt/door-z/availability", "online")
        await until(lambda: seen.last("door-z").values.get("mqtt.online") == 1.0,  # type: ignore[union-attr]
                    what="plain online")
        # A camera without frames is degraded: Frigate still answers for it.
        stats["cameras"]["front_door"]["camera_fps"] = 0.0
        await pub.publish("frigate/stats", json.dumps(stats))
        await until(lambda: seen.last("cam-front").status is Status.DEGRADED,  # type: ignore[union-attr]
                    what="no frames")
        assert seen.last("cam-front").error == \
            "camera delivers no frames (camera_fps 0)"  # type: ignore[union-attr]
    finally:
        await pub.close()
        await manager.stop()


async def test_silent_device_goes_stale_and_recovers_when_heard_again(
        broker: MosquittoServer) -> None:
    seen = Seen()
    door = Target("door-1", "h", site="a")
    manager = await started(broker, [
        (door, check(topic="site/a/door/1", profile="access_control", max_age=1.0))], seen)
    sim = access_door(broker.host, broker.port, "site/a/door/1", heartbeat_seconds=0.1)
    await sim.start()
    try:
        await until(lambda: (o := seen.last("door-1")) is not None and o.status is Status.OK
                    and "mqtt.age_seconds" in o.values, what="heartbeats")
        sim.silence()
        silenced = time.monotonic()
        await until(lambda: seen.last("door-1").status is Status.DOWN,  # type: ignore[union-attr]
                    what="stale")
        assert time.monotonic() - silenced >= 0.8  # not before max_age
        obs = seen.last("door-1")
        assert obs is not None and obs.error is not None
        assert obs.error.startswith("stale: no message for")
        assert obs.reason is Reason.STALE
        assert float(obs.values["mqtt.age_seconds"]) >= 1.0
        sim.resume()
        await until(lambda: seen.last("door-1").status is Status.OK,  # type: ignore[union-attr]
                    what="fresh again")
    finally:
        await sim.close()
        await manager.stop()


async def test_device_losing_its_connection_is_marked_offline_by_its_last_will(
        broker: MosquittoServer) -> None:
    seen = Seen()
    door = Target("door-2", "h")
    manager = await started(broker, [
        (door, check(topic="site/a/door/2", profile="access_control"))], seen)
    sim = access_door(broker.host, broker.port, "site/a/door/2", heartbeat_seconds=0.1)
    await sim.start()
    try:
        await until(lambda: (o := seen.last("door-2")) is not None
                    and o.values.get("mqtt.online") == 1.0, what="online")
        await sim.publish("site/a/door/2/forced", "true")
        await until(lambda: seen.last("door-2").error == "door forced open",  # type: ignore[union-attr]
                    what="forced")
        await sim.crash()
        await until(lambda: seen.last("door-2").values.get("mqtt.online") == 0.0,  # type: ignore[union-attr]
                    what="LWT offline")
        obs = seen.last("door-2")
        assert obs is not None and obs.status is Status.DOWN
        assert obs.error == "offline (availability topic)"
        assert obs.reason is Reason.OFFLINE
    finally:
        await sim.close()
        await manager.stop()


async def test_broker_restart_mid_run_reconnects_resubscribes_and_processes_new_messages(
        broker: MosquittoServer) -> None:
    seen = Seen()
    door = Target("door-r", "h")
    manager = await started(broker, [(door, check(topic="r/door", value="mqtt.door_open"))],
                            seen)
    connection = manager.brokers["lab"]
    pub = await publisher(broker)
    try:
        await pub.publish("r/door", "1")
        await until(lambda: len(seen.all) == 1, what="first message")
        await pub.crash()
        await broker.restart()
        await until(lambda: connection.connects >= 2 and connection.connected,
                    what="reconnected")
        pub = await publisher(broker, "pub2")
        await pub.publish("r/door", "0")
        await until(lambda: seen.last("door-r").values["mqtt.door_open"] == 0.0,  # type: ignore[union-attr]
                    what="message after restart")
    finally:
        await pub.close()
        started_at = time.monotonic()
        await manager.stop()
        assert time.monotonic() - started_at < 5.0  # nothing hangs


async def test_stop_while_the_broker_is_down_returns_promptly(broker: MosquittoServer) -> None:
    seen = Seen()
    manager = await started(broker, [(Target("d", "h"), check(topic="t"))], seen)
    await broker.kill()
    await until(lambda: not manager.brokers["lab"].connected, what="disconnected")
    began = time.monotonic()
    await manager.stop()
    assert time.monotonic() - began < 2.0


async def test_flood_beyond_the_queue_is_dropped_and_counted_and_the_source_carries_on(
        broker: MosquittoServer) -> None:
    seen = Seen()
    manager = await started(broker, [(Target("d", "h"), check(topic="flood"))], seen,
                            queue_size=50)
    connection = manager.brokers["lab"]
    pub = await publisher(broker)
    try:
        connection.hold()
        sent = await pub.flood(("flood", b"1") for _ in range(2000))
        await until(lambda: connection.received + connection.queue_depth
                    + connection.dropped >= sent - 1, what="flood read")
        assert connection.dropped >= sent - 50 - 2  # all but the queue (and one in hand)
        connection.release()
        await until(lambda: connection.received + connection.dropped == sent,
                    what="queue drained")
        assert connection.received <= 52
        stats = manager.broker_stats()[0]
        assert stats.dropped == connection.dropped and stats.connected
        await pub.publish("flood", "7")
        await until(lambda: seen.last("d").values["mqtt.value"] == 7.0,  # type: ignore[union-attr]
                    what="still processing")
    finally:
        await pub.close()
        await manager.stop()


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "bad_json"),
    (b'{"state": {"nested": 1}}', "wrong_type"),
    (b'{"other": 1}', "missing_path"),
    (b"\xff\xfe\x00", "bad_encoding"),
    (b"[" * 5000 + b"]" * 5000, "bad_json"),
    (b"x" * 70_000, "too_large"),
], ids=["bad_json", "wrong_type", "missing_path", "bad_encoding", "deep_json", "too_large"])
async def test_malformed_payloads_are_rejected_counted_and_logged_never_fatal(
        broker: MosquittoServer, payload: bytes, reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    seen = Seen()
    manager = await started(broker, [
        (Target("d", "h"), check(topic="m", json_path="state", value="mqtt.door_open"))],
        seen, max_payload=65_536)
    pub = await publisher(broker)
    try:
        await pub.publish("m", payload)
        await until(lambda: manager.broker_stats()[0].rejected.get(reason) == 1,
                    what=f"{reason} counted")
        # Reported as rejected, with why: never as "no message received yet".
        await until(lambda: len(seen.all) == 1, what="the rejection reported")
        rejected = seen.all[0]
        assert rejected.status is Status.DEGRADED and rejected.values == {}
        assert (rejected.error or "").startswith(f"rejected: m: {reason}: ")
        assert f"payload on m rejected ({reason}" in caplog.text
        await pub.publish("m", '{"state": true}')
        await until(lambda: len(seen.all) == 2, what="a good message after a bad one")
        assert (seen.all[1].status, seen.all[1].error) == (Status.OK, None)
        assert manager.broker_stats()[0].rejected == {reason: 1}
    finally:
        await pub.close()
        await manager.stop()


async def test_broker_with_passwords_takes_the_login_from_credentials() -> None:
    async with MosquittoServer(users={"elv": "s3cret-pw"}) as server:
        seen = Seen()
        good = {"mq": Credential("mq", "elv", Secret("s3cret-pw"))}
        manager = await started(server, [(Target("d", "h"), check(topic="p"))], seen, good,
                                broker={"credentials": "mq"})
        await manager.stop()
        bad = {"mq": Credential("mq", "elv", Secret("wrong"))}
        refused = MqttManager(settings(server, broker={"credentials": "mq"}), bad, seen)
        await refused.start()
        await refused.update([(Target("d", "h"), check(topic="p"))])
        try:
            await until(lambda: refused.brokers["lab"].last_error is not None,
                        what="refusal")
            assert not refused.brokers["lab"].connected
            assert "s3cret" not in (refused.brokers["lab"].last_error or "")
            assert "wrong" not in (refused.brokers["lab"].last_error or "")
        finally:
            await refused.stop()


async def test_check_naming_an_unknown_broker_reports_unknown() -> None:
    seen = Seen()
    manager = MqttManager(MqttSettings(), {}, seen)
    await manager.start()
    await manager.update([(Target("d", "h"), check(topic="t", broker="elsewhere"))])
    await manager.stop()
    assert seen.all[0].status is Status.UNKNOWN
    assert "unknown broker 'elsewhere'" in (seen.all[0].error or "")


async def test_tls_broker_is_reached_with_the_configured_ca_and_refused_without_it(
        tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(ca_file))
    async with MosquittoServer(tls=(chain, key)) as server:
        seen = Seen()
        manager = await started(server, [(Target("d", "h"), check(topic="tls/t"))], seen,
                                broker={"tls": True, "ca_file": str(ca_file)})
        try:
            assert manager.brokers["lab"].connected
        finally:
            await manager.stop()
        untrusted = MqttManager(settings(server, broker={"tls": True}), {}, seen)
        await untrusted.start()
        await untrusted.update([(Target("d", "h"), check(topic="tls/t"))])
        try:
            await until(lambda: untrusted.brokers["lab"].last_error is not None,
                        what="certificate refused")
            assert not untrusted.brokers["lab"].connected
            assert "CERTIFICATE" in (untrusted.brokers["lab"].last_error or "").upper()
        finally:
            await untrusted.stop()


async def test_update_changes_subscriptions_on_the_live_connection(
        broker: MosquittoServer) -> None:
    seen = Seen()
    manager = await started(broker, [(Target("a", "h"), check(topic="old/a"))], seen)
    connection = manager.brokers["lab"]
    pub = await publisher(broker)
    try:
        await manager.update([(Target("b", "h"), check(topic="new/b"))])
        assert connection.connects == 1  # no reconnect needed
        await pub.publish("old/a", "1")
        await pub.publish("new/b", "2")
        await until(lambda: seen.last("b") is not None, what="new topic")
        await asyncio.sleep(0.1)
        assert [o.device for o in seen.all] == ["b"]  # unsubscribed from old/a
        assert connection.received == 1
    finally:
        await pub.close()
        await manager.stop()
