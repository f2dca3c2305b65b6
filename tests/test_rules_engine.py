"""The evaluator: confirm/clear counts, durations, unknowns, flapping, configuration."""

from __future__ import annotations

from elvwatch.probes.base import Status
from elvwatch.rules.faults import FaultState
from elvwatch.rules.model import Rule, RuleConfig, build_rules
from tests.rulekit import device, engine, ob, states

INACTIVE, PENDING, FIRING, CLEARED = (FaultState.INACTIVE, FaultState.PENDING,
                                      FaultState.FIRING, FaultState.CLEARED)


def rule(condition: str, **fields: object) -> RuleConfig:
    data: dict[str, object] = {"id": "probe_value_high", "name_zh": "值过高",
                               "name_en": "Value high", "condition": condition, **fields}
    return RuleConfig.model_validate(data)


def only(*configs: RuleConfig) -> list[Rule]:
    return build_rules(configs, builtin=[])


CAM = device("cam-1", "camera", "cctv", {"icmp": "icmp", "snmp": "snmp"})


def high(value: float) -> dict[str, float]:
    return {"snmp.value": value}


def test_fault_fires_after_for_polls_and_clears_after_clear_polls() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"for": 3, "clear": 2})))
    assert states(eng.observe(ob("cam-1", "snmp", values=high(50)), "up")) == [
        ("probe_value_high", INACTIVE, PENDING)]
    assert eng.observe(ob("cam-1", "snmp", values=high(50)), "up") == []
    assert states(eng.observe(ob("cam-1", "snmp", values=high(50)), "up")) == [
        ("probe_value_high", PENDING, FIRING)]
    assert eng.observe(ob("cam-1", "snmp", values=high(50)), "up") == []
    assert eng.observe(ob("cam-1", "snmp", values=high(1)), "up") == []
    assert states(eng.observe(ob("cam-1", "snmp", values=high(1)), "up")) == [
        ("probe_value_high", FIRING, CLEARED)]


def test_one_good_poll_between_bad_ones_restarts_the_clear_count() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"for": 1, "clear": 2})))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    for value in (1, 50, 1, 50, 1):
        assert eng.observe(ob("cam-1", "snmp", values=high(value)), "up") == []
    assert eng.state_of("cam-1", "probe_value_high") is FIRING


def test_pending_fault_that_turns_good_goes_back_to_inactive_without_firing() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"for": 3})))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert states(eng.observe(ob("cam-1", "snmp", values=high(5)), "up")) == [
        ("probe_value_high", PENDING, INACTIVE)]
    # the streak starts again from one
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert eng.observe(ob("cam-1", "snmp", values=high(50)), "up") == []


def test_unknown_condition_neither_fires_nor_clears() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10 and snmp.other < 5",
                                     **{"for": 1, "clear": 1})))
    assert eng.observe(ob("cam-1", "snmp", values=high(50)), "up") == []  # other missing
    assert states(eng.observe(ob("cam-1", "snmp", values={"snmp.value": 50, "snmp.other": 1}),
                              "up")) == [("probe_value_high", INACTIVE, FIRING)]
    # The value vanishes (probe could not read it): the fault stays as it is.
    assert eng.observe(ob("cam-1", "snmp", values={"snmp.value": 50}), "up") == []
    assert eng.state_of("cam-1", "probe_value_high") is FIRING


def test_rule_meets_only_observations_that_carry_its_values() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"for": 2})))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    # ICMP results do not count as polls of an SNMP value.
    for _ in range(5):
        assert eng.observe(ob("cam-1", "icmp", values={"icmp.rtt_seconds": 0.01}), "up") == []
    assert states(eng.observe(ob("cam-1", "snmp", values=high(50)), "up")) == [
        ("probe_value_high", PENDING, FIRING)]


def test_duration_rule_fires_on_tick_once_the_condition_held_long_enough() -> None:
    eng, clock = engine([CAM], only(rule("snmp.value > 10", **{"for": "5m", "clear": "2m"})))
    assert states(eng.observe(ob("cam-1", "snmp", values=high(50)), "up")) == [
        ("probe_value_high", INACTIVE, PENDING)]
    clock.advance(299)
    assert eng.tick() == []
    clock.advance(1)
    fired = eng.tick()
    assert states(fired) == [("probe_value_high", PENDING, FIRING)]
    assert fired[0].at == clock.now
    eng.observe(ob("cam-1", "snmp", values=high(1)), "up")
    clock.advance(119)
    assert eng.tick() == []
    clock.advance(1)
    assert states(eng.tick()) == [("probe_value_high", FIRING, CLEARED)]


def test_fault_that_recurs_fires_again_with_the_same_fingerprint() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10")))
    first = eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    eng.observe(ob("cam-1", "snmp", values=high(1)), "up")
    again = eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert states(again) == [("probe_value_high", CLEARED, FIRING)]
    assert again[0].fingerprint == first[0].fingerprint


def test_flapping_fault_raises_one_unstable_fault_instead_of_a_storm() -> None:
    eng, clock = engine([CAM], only(rule("snmp.value > 10")), flap_transitions=4,
                        flap_window=600)
    out = []
    for i in range(40):  # toggles every poll for 20 minutes
        clock.advance(30)
        out += eng.observe(ob("cam-1", "snmp", values=high(50 if i % 2 == 0 else 1)), "up")
        out += eng.tick()
    own = [t for t in out if t.rule == "probe_value_high"]
    unstable = [t for t in out if t.rule == "probe_value_high.unstable"]
    assert len(own) == 4  # the first changes pass, then the fault is held back
    assert [(t.previous, t.state) for t in unstable] == [(INACTIVE, FIRING)]
    assert unstable[0].name_en == "Value high (unstable)"
    assert unstable[0].fingerprint != own[0].fingerprint
    # Quiet (stays bad) for a whole window: unstable clears, the fault reports its state.
    tail = []
    for _ in range(25):
        clock.advance(30)
        tail += eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
        tail += eng.tick()
    assert states(tail) == [("probe_value_high.unstable", FIRING, CLEARED),
                            ("probe_value_high", CLEARED, FIRING)]


def test_values_a_check_stops_reporting_are_forgotten() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"match": {"check": "icmp"}})))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert states(eng.observe(ob("cam-1", "icmp"), "up")) == [
        ("probe_value_high", INACTIVE, FIRING)]
    eng.observe(ob("cam-1", "snmp", Status.DOWN), "up")  # SNMP timed out: no value
    # The old 50 is gone: unknown, the fault neither clears nor re-fires.
    assert eng.observe(ob("cam-1", "icmp"), "up") == []
    eng.observe(ob("cam-1", "snmp", values=high(1)), "up")
    assert states(eng.observe(ob("cam-1", "icmp"), "up")) == [
        ("probe_value_high", FIRING, CLEARED)]


def test_rules_match_devices_by_site_system_kind_tags_and_check() -> None:
    r = rule('status == "down"', match={"site": "s1", "system": "cctv", "kind": "camera",
                                        "tags": ["outdoor"], "check": "rtsp"})
    devices = [
        device("match", "camera", "cctv", {"rtsp": "rtsp", "tcp_554": "tcp"},
               tags=["outdoor", "gate"]),
        device("no-tag", "camera", "cctv", {"rtsp": "rtsp"}),
        device("other-site", "camera", "cctv", {"rtsp": "rtsp"}, site="s2", tags=["outdoor"]),
        device("other-kind", "nvr", "cctv", {"rtsp": "rtsp"}, tags=["outdoor"]),
    ]
    eng, _ = engine(devices, only(r))
    fired = {d.id for d in devices
             for t in eng.observe(ob(d.id, "rtsp", Status.DOWN), "up") if t.state is FIRING}
    assert fired == {"match"}
    # a check named otherwise is matched by its type
    eng2, _ = engine([device("cam", "camera", "cctv", {"main_stream": "rtsp"},
                             tags=["outdoor"])], only(r))
    assert states(eng2.observe(ob("cam", "main_stream", Status.DOWN), "up")) == [
        ("probe_value_high", INACTIVE, FIRING)]
    assert eng.observe(ob("match", "tcp_554", Status.DOWN), "up") == []


def test_site_rule_replaces_a_builtin_rule_and_can_switch_one_off() -> None:
    stricter = RuleConfig.model_validate({
        "id": "clock_drift", "name_zh": "时钟偏差", "name_en": "Clock drift",
        "match": {"system": "cctv"}, "condition": "abs(onvif.clock_offset_seconds) > 5"})
    off = RuleConfig.model_validate({"id": "device_unreachable", "name_zh": "x",
                                     "name_en": "x", "condition": "true", "enabled": False})
    rules = build_rules([stricter, off])
    assert "device_unreachable" not in {r.id for r in rules}
    eng, _ = engine([device("cam", "camera", "cctv", {"onvif": "onvif"})], rules)
    out = eng.observe(ob("cam", "onvif", Status.DOWN, {"onvif.clock_offset_seconds": 8.0}),
                      "down")
    assert states(out) == [("clock_drift", INACTIVE, FIRING)]


def test_removing_a_device_from_the_config_clears_its_firing_faults() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10")))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    out = eng.configure([])
    assert states(out) == [("probe_value_high", FIRING, CLEARED)]
    assert out[0].summary == "rule or device removed from the config"
    assert eng.observe(ob("cam-1", "snmp", values=high(50)), "up") == []


def test_reconfigure_keeps_the_state_of_faults_that_stay() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10", **{"clear": 2})))
    eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert eng.configure([CAM]) == []
    eng.observe(ob("cam-1", "snmp", values=high(1)), "up")
    assert states(eng.observe(ob("cam-1", "snmp", values=high(1)), "up")) == [
        ("probe_value_high", FIRING, CLEARED)]


def test_transition_summary_shows_the_condition_and_the_values_read() -> None:
    eng, _ = engine([CAM], only(rule("snmp.value > 10")))
    out = eng.observe(ob("cam-1", "snmp", values=high(50)), "up")
    assert out[0].summary == "snmp.value > 10 (snmp.value=50)"
    assert eng.firing() == out


def test_builtin_rules_on_an_unknown_device_do_nothing() -> None:
    eng, _ = engine([CAM])
    assert eng.observe(ob("ghost", "icmp", Status.DOWN), "down") == []


def test_family_aggregate_covers_every_labelled_row_and_drops_rows_that_vanish() -> None:
    nvr = device("nvr-1", "nvr", "cctv", {"snmp": "snmp"})
    eng, _ = engine([nvr], only(rule("sum_of(snmp.disk.failed) > 0",
                                     **{"match": {"kind": "nvr"}})))
    disks = {'snmp.disk.failed{index="1",name="sda"}': 0.0,
             'snmp.disk.failed{index="2",name="sdb"}': 0.0}
    assert eng.observe(ob("nvr-1", "snmp", values=disks), "up") == []
    bad = {**disks, 'snmp.disk.failed{index="2",name="sdb"}': 1.0}
    out = eng.observe(ob("nvr-1", "snmp", values=bad), "up")
    assert states(out) == [("probe_value_high", INACTIVE, FIRING)]
    assert "sum_of(snmp.disk.failed)=1" in out[0].summary
    # the failed disk's row is gone (pulled): the family is what is reported now
    only_sda = {'snmp.disk.failed{index="1",name="sda"}': 0.0}
    assert states(eng.observe(ob("nvr-1", "snmp", values=only_sda), "up")) == [
        ("probe_value_high", FIRING, CLEARED)]
    # the family vanishes entirely (SNMP timeout): unknown, nothing changes
    eng.observe(ob("nvr-1", "snmp", values=bad), "up")
    assert eng.observe(ob("nvr-1", "snmp", Status.DOWN), "down") == []
    assert eng.state_of("nvr-1", "probe_value_high") is FIRING


def test_error_text_of_the_observation_is_a_value() -> None:
    cam = device("cam-1", "camera", "cctv", {"onvif": "onvif"})
    eng, _ = engine([cam], only(rule('startswith(error, "authentication")',
                                     **{"match": {"check": "onvif"}})))
    out = eng.observe(ob("cam-1", "onvif", Status.DOWN, error="authentication: locked"), "up")
    assert states(out) == [("probe_value_high", INACTIVE, FIRING)]
    assert states(eng.observe(ob("cam-1", "onvif"), "up")) == [
        ("probe_value_high", FIRING, CLEARED)]
