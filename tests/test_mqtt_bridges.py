"""The shipped MQTT profiles against simulated bridges that publish what the real ones do
(``lab.mqtt_bridges``: PAI for the EVO and the Spectra/Magellan families, Frigate in
both stats layouts), and generic JSON checks, over a real Mosquitto."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt_bridges import TROUBLES, FrigateStats, PaiBridge
from elvwatch.probes.base import Status, Target
from elvwatch.probes.mqtt import MqttManager
from elvwatch.probes.mqtt_payload import Rejected, flatten
from elvwatch.probes.mqtt_profiles import builtin_profiles
from elvwatch.probes.mqtt_settings import MqttCheckOptions
from elvwatch.rules.model import build_rules
from tests.helpers import until
from tests.test_mqtt import Seen, check, publisher, started

pytestmark = pytest.mark.skipif(not MosquittoServer.available(),
                                reason="needs the Debian package mosquitto (see .ci/run)")
PANEL = Target("panel-1", "h", system="alarm", kind="alarm_panel")


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoServer]:
    async with MosquittoServer() as server:
        yield server


def values(seen: Seen, device: str = "panel-1") -> dict[str, Any]:
    obs = seen.last(device)
    return dict(obs.values) if obs is not None else {}


# -- profiles as data -----------------------------------------------------------------
def test_every_fault_a_shipped_profile_flags_is_read_by_a_builtin_rule() -> None:
    # A profile value that makes a device degraded but that no rule reads shows in the
    # status and never opens a ticket: the defect this guards against.
    read = {name for rule in build_rules() for name in rule.condition.names} | \
        {family for rule in build_rules() for _, family in rule.condition.aggregates}
    flagged = {(profile.name, value.name) for profile in builtin_profiles().values()
               for topic in profile.topics for value in topic.values
               if value.fault_if or value.fault_below is not None}
    assert flagged and {pair for pair in flagged if pair[1] not in read} == set()


def test_old_pai_profile_names_fail_with_the_family_split_explained() -> None:
    with pytest.raises(ValueError, match=r"paradox_pai_evo_panel \(EVO\) or paradox_pai_sp_panel"):
        MqttCheckOptions.model_validate({"topic": "paradox", "profile": "paradox_pai_panel"})


def test_named_wildcard_must_be_a_whole_level() -> None:
    from elvwatch.probes.mqtt_profiles import TopicSpec

    with pytest.raises(ValueError, match="whole level"):
        TopicSpec.model_validate({"topic": "{base}/zone_{+zone}/open"})
    with pytest.raises(ValueError, match="reserved"):
        TopicSpec.model_validate({"topic": "{base}/{+device}/open"})


def test_generic_json_is_flattened_like_telegraf_keeping_flags_and_state_words() -> None:
    doc = {"temp": 21.5, "door": "OPEN", "ok": True, "name": "lobby",
           "net": {"rssi": -61, "up": "online"}, "ch": [{"v": 1}, {"v": 0}], "x": None}
    assert flatten(doc) == {"temp": 21.5, "door": 1.0, "ok": 1.0, "net_rssi": -61.0,
                            "net_up": 1.0, "ch_0_v": 1.0, "ch_1_v": 0.0}
    with pytest.raises(Rejected, match="no_values"):
        flatten({"name": "lobby", "fw": "V5.5"})
    with pytest.raises(Rejected, match="too_many"):
        flatten({f"k{i}": i for i in range(100)})


# -- PAI ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "numeric"), [("evo", False), ("sp", False), ("evo", True)])
async def test_pai_panel_profile_reads_its_family_and_flags_each_fault(
        broker: MosquittoServer, family: str, numeric: bool) -> None:
    profile = f"paradox_pai_{family}_panel"
    ac, battery, comm = {"evo": ("ac_trouble", "battery_failure_trouble", "tlm_trouble"),
                         "sp": ("ac_failure_trouble", "low_battery_trouble",
                                "telephone_line")}[family]
    zone_alarm = {"evo": "presently_in_alarm", "sp": "alarm"}[family]
    low_battery = {"evo": "low_battery", "sp": "rf_low_battery_trouble"}[family]
    bridge = PaiBridge(broker.host, broker.port, family,  # type: ignore[arg-type]
                       numeric=numeric, zones=("Front_door", "Hall PIR".replace(" ", "_")))
    await bridge.start()
    seen = Seen()
    manager = await started(broker, [(PANEL, check(topic="paradox", profile=profile,
                                                   expect_seconds=0.5))], seen)
    try:
        await until(lambda: values(seen).get("mqtt.missing") == 0.0, what="all expected")
        got = values(seen)
        assert seen.last("panel-1").status is Status.OK  # type: ignore[union-attr]
        assert got["mqtt.online"] == 1.0 and got["mqtt.battery_volts"] == 13.6
        for name in ("ac_fail", "battery_low", "tamper", "communicator_fault", "bus_fault"):
            assert got[f"mqtt.{name}"] == 0.0, name
        for zone in ("Front_door", "Hall_PIR"):
            for name in ("open", "alarm", "tamper", "low_battery", "supervision_lost"):
                assert got[f'mqtt.zone.{name}{{zone="{zone}"}}'] == 0.0, (zone, name)
        assert got['mqtt.partition.alarm{partition="Area_1"}'] == 0.0
        await bridge.trouble(ac)
        await bridge.trouble(battery)
        await bridge.trouble(comm)
        await bridge.zone("Hall_PIR", zone_alarm)
        await bridge.zone("Front_door", low_battery)
        await bridge.partition("Area_1", "audible_alarm")
        await until(lambda: values(seen).get(
            'mqtt.partition.alarm{partition="Area_1"}') == 1.0, what="partition triggered")
        got, obs = values(seen), seen.last("panel-1")
        assert (got["mqtt.ac_fail"], got["mqtt.battery_low"], got["mqtt.communicator_fault"]) \
            == (1.0, 1.0, 1.0)
        assert got['mqtt.zone.alarm{zone="Hall_PIR"}'] == 1.0
        assert got['mqtt.zone.alarm{zone="Front_door"}'] == 0.0
        assert got['mqtt.zone.low_battery{zone="Front_door"}'] == 1.0
        assert obs is not None and obs.status is Status.DEGRADED and obs.error is not None
        for reason in ("AC power lost", "telephone line trouble", "zone in alarm (Hall_PIR)",
                       "zone detector battery low (Front_door)",
                       "partition in audible alarm (Area_1)", "partition in alarm (Area_1)"):
            assert reason in obs.error, reason
        for flag in (ac, battery, comm):
            await bridge.trouble(flag, False)
        await bridge.zone("Hall_PIR", zone_alarm, False)
        await bridge.zone("Front_door", low_battery, False)
        await bridge.partition("Area_1", "audible_alarm", False)
        await until(lambda: seen.last("panel-1").status is Status.OK,  # type: ignore[union-attr]
                    what="all clear")
        assert manager.broker_stats()[0].rejected == {}
    finally:
        await bridge.close()
        await manager.stop()


# (family, how to raise it, the value set, the reason said)
SUB_DEVICE_FAULTS = [
    ("evo", ("sub_device", "bus-module", "Module_2", "ac_trouble"),
     'mqtt.module.ac_fail{module="Module_2"}', "bus module AC power lost (Module_2)"),
    ("evo", ("sub_device", "bus-module", "Module_1", "missing"),
     'mqtt.module.missing{module="Module_1"}', "bus module missing (Module_1)"),
    ("evo", ("trouble", "bell_absent_trouble"), "mqtt.bell_fault",
     "bell absent (siren disconnected)"),
    ("evo", ("trouble", "time_lost_trouble"), "mqtt.clock_lost", "panel clock lost"),
    ("sp", ("sub_device", "repeaters", "Module_1", "supervision_trouble"),
     'mqtt.repeater.missing{repeater="Module_1"}', "wireless repeater supervision lost (Module_1)"),
    ("sp", ("sub_device", "keypads", "Module_2", "ac_loss_trouble"),
     'mqtt.keypad.ac_fail{keypad="Module_2"}', "wireless keypad AC power lost (Module_2)"),
    ("sp", ("sub_device", "outputs", "Module_1", "tamper"),
     'mqtt.output.tamper{output="Module_1"}', "wireless output tamper (Module_1)"),
    ("sp", ("trouble", "rf_interference_trouble"), "mqtt.rf_jamming",
     "wireless interference (RF jamming)"),
    ("sp", ("trouble", "auxiliary_output_overload_trouble"), "mqtt.power_output_fault",
     "auxiliary power output overloaded"),
]


@pytest.mark.parametrize(("family", "fault", "name", "reason"), SUB_DEVICE_FAULTS,
                         ids=[f"{c[0]}-{c[1][-1]}" for c in SUB_DEVICE_FAULTS])
async def test_pai_sub_device_and_system_troubles_are_read_and_flagged(
        broker: MosquittoServer, family: str, fault: tuple[str, ...], name: str,
        reason: str) -> None:
    bridge = PaiBridge(broker.host, broker.port, family,  # type: ignore[arg-type]
                       devices=("Module_1", "Module_2"))
    await bridge.start()
    seen = Seen()
    manager = await started(broker, [(PANEL, check(
        topic="paradox", profile=f"paradox_pai_{family}_panel", expect_seconds=0.5))], seen)
    try:
        await until(lambda: values(seen).get("mqtt.missing") == 0.0, what="all expected")
        # Every module slot is published healthy: sparse flags keep no value for them.
        assert not [k for k in values(seen) if k.startswith(
            ("mqtt.module.", "mqtt.repeater.", "mqtt.keypad.", "mqtt.output."))]
        assert seen.last("panel-1").status is Status.OK  # type: ignore[union-attr]
        action = getattr(bridge, fault[0])
        await action(*fault[1:], True)
        await until(lambda: values(seen).get(name) == 1.0, what=name)
        obs = seen.last("panel-1")
        assert obs is not None and obs.status is Status.DEGRADED and obs.error == reason
        await action(*fault[1:], False)
        await until(lambda: seen.last("panel-1").status is Status.OK,  # type: ignore[union-attr]
                    what="clear")
        # A sub-device flag back at 0 leaves no row; a system trouble reads 0.
        assert values(seen).get(name) == (None if "{" in name else 0.0)
    finally:
        await bridge.close()
        await manager.stop()


async def test_profile_of_the_other_panel_family_reports_its_topics_missing(
        broker: MosquittoServer) -> None:
    bridge = PaiBridge(broker.host, broker.port, "sp")
    await bridge.start()
    seen = Seen()
    manager = await started(broker, [(PANEL, check(topic="paradox",
                                                   profile="paradox_pai_evo_panel",
                                                   expect_seconds=0.5))], seen)
    try:
        await until(lambda: "mqtt.missing" in values(seen), what="the window to close")
        obs = seen.last("panel-1")
        assert obs is not None and obs.status is Status.DEGRADED and obs.error is not None
        assert obs.error.startswith("missing: ")
        assert "expected topics never published in 0.5s (does the profile match the " \
               "bridge?): paradox/states/system/troubles/ac_trouble, " in obs.error
        # The SP bridge has none of the EVO-only troubles nor zones' presently_in_alarm.
        evo_only = [t for t in TROUBLES["evo"] if t not in TROUBLES["sp"]]
        expected_evo_only = [t for t in builtin_profiles()["paradox_pai_evo_panel"].topics
                             if t.expected and t.topic.rsplit("/", 1)[-1] in evo_only]
        assert values(seen)["mqtt.missing"] >= len(expected_evo_only) + 2
        assert "mqtt.ac_fail" not in values(seen)      # never heard: unknown, not "no fault"
    finally:
        await bridge.close()
        await manager.stop()


async def test_pai_zone_profile_watches_one_zone_with_the_panels_labels(
        broker: MosquittoServer) -> None:
    bridge = PaiBridge(broker.host, broker.port, "evo", zones=("Front_door", "Back_door"))
    await bridge.start()
    seen = Seen()
    zone = Target("zone-front", "h", system="alarm")
    manager = await started(broker, [(zone, check(topic="paradox", key="Front_door",
                                                  profile="paradox_pai_evo_zone",
                                                  expect_seconds=0.5))], seen)
    try:
        await until(lambda: values(seen, "zone-front").get("mqtt.missing") == 0.0,
                    what="zone topics")
        await bridge.zone("Back_door", "presently_in_alarm")       # another zone
        await bridge.zone("Front_door", "tamper")
        await until(lambda: values(seen, "zone-front").get(
            'mqtt.zone.tamper{zone="Front_door"}') == 1.0, what="tamper")
        got = values(seen, "zone-front")
        assert not any("Back_door" in name for name in got)
        assert seen.last("zone-front").error == "zone tamper (Front_door)"  # type: ignore[union-attr]
        await bridge.crash()                      # PAI dies: the broker sends its Will
        await until(lambda: seen.last("zone-front").status is Status.DOWN,  # type: ignore[union-attr]
                    what="offline")
    finally:
        await bridge.close()
        await manager.stop()


async def test_adhoc_probe_of_a_pai_bridge_names_the_topics_its_profile_misses(
        broker: MosquittoServer) -> None:
    from elvwatch.probes.adhoc import parse_target, probe_all, probe_result

    bridge = PaiBridge(broker.host, broker.port, "sp")
    await bridge.start()
    try:
        for profile, status in (("paradox_pai_sp_panel", "ok"),
                                ("paradox_pai_evo_panel", "degraded")):
            adhoc = parse_target(f"mqtt://127.0.0.1:{broker.port}/paradox"
                                 f"?profile={profile}&listen=2")
            result = probe_result("panel", adhoc.kind, await probe_all(
                adhoc.target, adhoc.checks, adhoc.plan))
            assert result["status"] == status, result
            obs = result["observations"][0]  # type: ignore[index]
            assert ("mqtt.missing" in obs["values"]) and \
                (obs["values"]["mqtt.missing"] > 0) == (status == "degraded")
    finally:
        await bridge.close()


# -- Frigate ------------------------------------------------------------------------------
async def watch_gate(broker: MosquittoServer, frigate: FrigateStats) -> tuple[Seen, MqttManager]:
    """Start ``frigate`` and a source watching its camera "gate" as device cam-gate."""
    await frigate.start()
    seen = Seen()
    camera = Target("cam-gate", "h", system="cctv")
    manager = await started(broker, [(camera, check(topic="frigate", key="gate",
                                                    profile="frigate", expect_seconds=1))],
                            seen)
    return seen, manager


@pytest.mark.parametrize("legacy", [False, True], ids=["0.13+", "0.12"])
async def test_frigate_camera_without_frames_and_camera_gone_from_stats(
        broker: MosquittoServer, legacy: bool) -> None:
    frigate = FrigateStats(broker.host, broker.port, {"gate": 5.0, "lobby": 15.0},
                           interval=0.2, legacy=legacy)
    seen, manager = await watch_gate(broker, frigate)
    try:
        await until(lambda: values(seen, "cam-gate").get("mqtt.camera_fps") == 5.0,
                    what="stats")
        got = values(seen, "cam-gate")
        assert (got["mqtt.camera_in_stats"], got["mqtt.online"]) == (1.0, 1.0)
        assert got["mqtt.process_fps"] == 5.0 and got["mqtt.detection_fps"] == 1.0
        frigate.cameras["gate"] = 0.0
        await until(lambda: seen.last("cam-gate").status is Status.DEGRADED,  # type: ignore[union-attr]
                    what="no frames")
        assert seen.last("cam-gate").error == \
            "camera delivers no frames (camera_fps 0)"  # type: ignore[union-attr]
        del frigate.cameras["gate"]
        await until(lambda: values(seen, "cam-gate").get("mqtt.camera_in_stats") == 0.0,
                    what="camera gone")
        assert seen.last("cam-gate").error == \
            "camera missing from Frigate's stats"  # type: ignore[union-attr]
        assert "mqtt.camera_fps" not in values(seen, "cam-gate")    # no stale frame rate
        assert manager.broker_stats()[0].rejected == {}
    finally:
        await frigate.close()
        await manager.stop()


async def test_frigate_stream_health_of_0_17_and_a_camera_switched_off(
        broker: MosquittoServer) -> None:
    frigate = FrigateStats(broker.host, broker.port, {"gate": 5.0}, interval=0.2, health=True)
    seen, manager = await watch_gate(broker, frigate)
    try:
        await until(lambda: values(seen, "cam-gate").get("mqtt.camera_enabled") == 1.0
                    and values(seen, "cam-gate").get("mqtt.camera_stream_offline") == 0.0,
                    what="status topics")
        frigate.status["gate"]["detect"] = "offline"
        await until(lambda: values(seen, "cam-gate").get("mqtt.camera_stream_offline")
                    == 1.0, what="detect offline")
        assert seen.last("cam-gate").error == \
            "camera stream offline (Frigate is restarting it)"  # type: ignore[union-attr]
        frigate.status["gate"]["detect"] = "online"
        frigate.status["gate"]["record"] = "offline"
        await until(lambda: seen.last("cam-gate").error ==  # type: ignore[union-attr]
                    "camera recording stalled (no valid segments)", what="record offline")
        frigate.status["gate"]["record"] = "online"
        # Turned off in Frigate: streams "disabled", no frames — no fault.
        await frigate.set_enabled("gate", False)
        frigate.cameras["gate"] = 0.0
        await until(lambda: values(seen, "cam-gate").get("mqtt.camera_fps") == 0.0
                    and values(seen, "cam-gate").get("mqtt.camera_enabled") == 0.0,
                    what="camera off")
        await until(lambda: seen.last("cam-gate").status is Status.OK,  # type: ignore[union-attr]
                    what="no fault while off")
        assert manager.broker_stats()[0].rejected == {}
    finally:
        await frigate.close()
        await manager.stop()


# -- generic JSON ---------------------------------------------------------------------------
async def test_generic_json_object_becomes_named_values_one_per_topic_under_a_wildcard(
        broker: MosquittoServer) -> None:
    seen = Seen()
    hall = Target("hall-sensors", "h")
    manager = await started(broker, [(hall, check(topic="site/hall/+/state"))], seen)
    pub = await publisher(broker)
    try:
        await pub.publish("site/hall/door1/state", json.dumps(
            {"contact": "open", "battery": 87, "fw": "1.2"}))
        await pub.publish("site/hall/pir2/state", "true")
        await until(lambda: len(values(seen, "hall-sensors")) >= 4, what="both topics")
        got = values(seen, "hall-sensors")
        door = 'topic="site/hall/door1/state"'
        assert got[f'mqtt.value{{{door},key="contact"}}'] == 1.0
        assert got[f'mqtt.value{{{door},key="battery"}}'] == 87.0
        assert got['mqtt.value{topic="site/hall/pir2/state"}'] == 1.0
        assert not any("fw" in name for name in got)      # a free string: skipped
        await pub.publish("site/hall/cam9/state", json.dumps({"model": "DS-2CD"}))
        await until(lambda: (seen.last("hall-sensors").error or "").startswith(  # type: ignore[union-attr]
            "rejected: site/hall/cam9/state: no_values:"), what="the rejection, with why")
        assert seen.last("hall-sensors").status is Status.DEGRADED  # type: ignore[union-attr]
    finally:
        await pub.close()
        await manager.stop()


async def test_check_whose_every_payload_is_rejected_says_so_not_nothing_received(
        broker: MosquittoServer) -> None:
    seen = Seen()
    meter = Target("meter-1", "h")
    manager = await started(broker, [(meter, check(topic="meter/1", json_path="kw",
                                                   max_age=0.5))], seen)
    pub = await publisher(broker)
    try:
        await pub.publish("meter/1", json.dumps({"kW": 3.2}))
        await until(lambda: seen.last("meter-1") is not None, what="the first report")
        assert seen.last("meter-1").error == \
            "rejected: meter/1: missing_path: no key 'kw'"  # type: ignore[union-attr]
        await until(lambda: seen.last("meter-1").status is Status.DOWN,  # type: ignore[union-attr]
                    what="stale")
        error = seen.last("meter-1").error or ""  # type: ignore[union-attr]
        assert error.startswith("stale: no usable message for ")
        assert error.endswith("; rejected: meter/1: missing_path: no key 'kw'")
    finally:
        await pub.close()
        await manager.stop()
