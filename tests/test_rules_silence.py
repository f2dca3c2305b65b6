"""Silences and maintenance windows: muted faults are recorded, and ticketed on expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from elvwatch.probes.base import Status
from elvwatch.rules.faults import FaultState
from elvwatch.rules.silence import SilenceConfig, Silencer, new_silence
from tests.rulekit import Clock, device, engine, ob

FIRING = FaultState.FIRING
CAM = device("cam-1", "camera", "cctv", {"icmp": "icmp"})
CAM2 = device("cam-2", "camera", "cctv", {"icmp": "icmp"}, site="s2")


def test_silence_mutes_matching_labels_only_while_active() -> None:
    clock = Clock(1000)
    silencer = Silencer(clock)
    silence = silencer.add(new_silence({"site": "s1", "kind": ["camera", "nvr"]}, "Li Wei",
                                       "lens cleaning", until=2000, starts=1500))
    labels = {"site": "s1", "device": "cam-1", "system": "cctv", "kind": "camera",
              "rule": "device_unreachable"}
    assert silencer.mutes(labels) is None  # window not started
    clock.now = 1500
    assert silencer.mutes(labels) == silence.id
    assert silencer.mutes({**labels, "kind": "switch"}) is None
    assert silencer.mutes({**labels, "site": "s2"}) is None
    clock.now = 2000
    assert silencer.mutes(labels) is None
    assert silencer.list() == [] and silencer.list(include_expired=True) == [silence]


def test_silenced_fault_is_recorded_and_ticketed_when_the_silence_expires() -> None:
    clock = Clock(1000)
    silencer = Silencer(clock)
    silence = silencer.add(new_silence({"device": "cam-1"}, "Li Wei", "replacing camera",
                                       until=1600))
    eng, _ = engine([CAM, CAM2], silencer=silencer, clock=clock)
    muted = eng.observe(ob("cam-1", "icmp", Status.DOWN), "down")
    other = eng.observe(ob("cam-2", "icmp", Status.DOWN), "down")
    assert [(t.state, t.suppressed_by) for t in muted] == [(FIRING, silence.id)]
    assert [(t.state, t.suppressed_by) for t in other] == [(FIRING, None)]
    clock.now = 1599
    assert eng.tick() == []
    clock.now = 1600
    released = eng.tick()
    assert [(t.device, t.previous, t.state, t.suppressed_by) for t in released] == [
        ("cam-1", FIRING, FIRING, None)]


def test_fault_that_clears_under_a_silence_is_not_ticketed_on_expiry() -> None:
    clock = Clock(1000)
    silencer = Silencer(clock)
    silencer.add(new_silence({"site": "s1"}, "Li Wei", "power work", until=1600))
    eng, _ = engine([CAM], silencer=silencer, clock=clock)
    eng.observe(ob("cam-1", "icmp", Status.DOWN), "down")
    cleared = eng.observe(ob("cam-1", "icmp"), "up")
    assert [t.state for t in cleared] == [FaultState.CLEARED]
    assert cleared[0].suppressed_by is not None  # the clear matches the muted episode
    clock.now = 1600
    assert eng.tick() == []


def test_maintenance_window_starting_later_mutes_a_firing_fault_when_it_starts() -> None:
    clock = Clock(1000)
    silencer = Silencer(clock)
    eng, _ = engine([CAM], silencer=silencer, clock=clock)
    eng.observe(ob("cam-1", "icmp", Status.DOWN), "down")
    window = silencer.add(new_silence({"rule": "device_unreachable"}, "ops", "visit",
                                      starts=1200, until=1300))
    assert eng.tick() == []
    clock.now = 1200
    assert [t.suppressed_by for t in eng.tick()] == [window.id]
    clock.now = 1300
    assert [t.suppressed_by for t in eng.tick()] == [None]


def test_expiring_a_silence_early_releases_its_faults() -> None:
    clock = Clock(1000)
    silencer = Silencer(clock)
    silence = silencer.add(new_silence({"site": "s1"}, "ops", "visit", until=9000))
    eng, _ = engine([CAM], silencer=silencer, clock=clock)
    eng.observe(ob("cam-1", "icmp", Status.DOWN), "down")
    eng.tick()
    assert silencer.expire(silence.id) is not None
    assert [t.suppressed_by for t in eng.tick()] == [None]
    assert silencer.expire("nope") is None


@pytest.mark.parametrize(("matchers", "message"), [
    ({}, "at least one matcher"),
    ({"colour": "red"}, "unknown matcher 'colour'"),
    ({"site": []}, "matcher 'site' has no values"),
])
def test_bad_silences_are_refused(matchers: dict[str, list[str] | str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_silence(matchers, "ops", "why", until=10)


def test_silence_from_config_keeps_a_stable_id() -> None:
    raw = {"matchers": {"site": "s1", "system": ["cctv", "alarm"]}, "who": "Li Wei",
           "why": "quarterly visit", "starts": "2026-03-01T01:00:00Z",
           "until": "2026-03-01T05:00:00Z"}
    first = SilenceConfig.model_validate(raw).to_silence()
    second = SilenceConfig.model_validate(raw).to_silence()
    assert first.id == second.id and first.id.startswith("config-")
    assert first.starts == datetime(2026, 3, 1, 1, tzinfo=UTC).timestamp()
    assert first.matchers["system"] == {"cctv", "alarm"}
    with pytest.raises(ValidationError, match="until must be after starts"):
        SilenceConfig.model_validate({**raw, "until": "2026-03-01T00:00:00Z"})
