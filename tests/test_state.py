"""Device state from observations: confirmation counts and transitions."""

from __future__ import annotations

from elvwatch.probes.base import Observation, Status
from elvwatch.rules.state import DeviceState, StateTracker


def obs(check: str, status: Status, t: float, error: str | None = None) -> Observation:
    return Observation("cam-1", check, status, time=t, error=error)


def tracker(down_after: int = 3) -> StateTracker:
    t = StateTracker(down_after=down_after, up_after=1)
    t.configure([("cam-1", ["icmp", "rtsp"])])
    return t


def test_first_results_set_the_state_at_once() -> None:
    t = tracker()
    assert t.observe(obs("icmp", Status.OK, 1)) is not None
    transition = t.observe(obs("rtsp", Status.OK, 2))
    assert transition is None  # still up
    assert t.devices["cam-1"].state is DeviceState.UP


def test_device_goes_down_only_after_the_configured_failures() -> None:
    t = tracker(down_after=3)
    t.observe(obs("icmp", Status.OK, 1))
    t.observe(obs("rtsp", Status.OK, 1))
    for i in range(2):
        assert t.observe(obs("icmp", Status.DOWN, 10 + i, "no echo reply")) is None
        assert t.observe(obs("rtsp", Status.DOWN, 10 + i, "refused")) is None
    assert t.devices["cam-1"].state is DeviceState.UP
    first = t.observe(obs("icmp", Status.DOWN, 20, "no echo reply"))
    assert first is not None and first.state is DeviceState.DEGRADED
    second = t.observe(obs("rtsp", Status.DOWN, 21, "refused"))
    assert second is not None
    assert (second.previous, second.state, second.at) == (DeviceState.DEGRADED,
                                                          DeviceState.DOWN, 21)
    assert "icmp: no echo reply" in second.cause and "rtsp: refused" in second.cause


def test_one_good_run_brings_it_back_up() -> None:
    t = tracker(down_after=1)
    t.observe(obs("icmp", Status.DOWN, 1, "x"))
    t.observe(obs("rtsp", Status.DOWN, 1, "y"))
    assert t.devices["cam-1"].state is DeviceState.DOWN
    t.observe(obs("icmp", Status.OK, 5))
    back = t.observe(obs("rtsp", Status.OK, 6))
    assert back is not None and back.state is DeviceState.UP and back.at == 6


def test_an_interrupted_failure_streak_does_not_count() -> None:
    t = tracker(down_after=2)
    t.observe(obs("icmp", Status.OK, 1))
    t.observe(obs("rtsp", Status.OK, 1))
    t.observe(obs("icmp", Status.DOWN, 2))
    t.observe(obs("icmp", Status.OK, 3))
    t.observe(obs("icmp", Status.DOWN, 4))
    assert t.devices["cam-1"].state is DeviceState.UP


def test_restored_state_is_compared_with_the_first_new_result() -> None:
    t = tracker()
    t.restore("cam-1", DeviceState.DOWN, 100.0, "icmp: no echo reply")
    t.observe(obs("icmp", Status.DOWN, 200))
    assert t.observe(obs("rtsp", Status.DOWN, 200)) is None  # still down: no new transition
    assert t.devices["cam-1"].since == 100.0


def test_reconfigure_keeps_state_of_devices_that_stay() -> None:
    t = tracker()
    t.observe(obs("icmp", Status.OK, 1))
    t.configure([("cam-1", ["icmp", "rtsp", "http"]), ("cam-2", ["icmp"])])
    assert t.devices["cam-1"].checks["icmp"].last is not None
    assert t.devices["cam-2"].state is DeviceState.UNKNOWN
    t.configure([("cam-2", ["icmp"])])
    assert "cam-1" not in t.devices
    assert t.observe(obs("icmp", Status.OK, 3)) is None  # removed device is ignored


def test_the_change_log_names_each_device_whose_state_changed_since_a_reader_looked(
        ) -> None:
    t = tracker(down_after=1)
    log = t.changes
    epoch, seq = log.epoch, log.seq
    t.observe(obs("icmp", Status.OK, 1))  # unknown → up
    t.observe(obs("rtsp", Status.OK, 1))  # still up: no change
    assert log.since(epoch, seq) == ["cam-1"]
    seq = log.seq
    assert log.since(epoch, seq) == []
    t.observe(obs("rtsp", Status.DOWN, 2))  # up → degraded
    t.observe(obs("icmp", Status.DOWN, 3))  # degraded → down
    assert log.since(epoch, seq) == ["cam-1", "cam-1"]
    # A new device set is a new epoch: readers of the old one rebuild.
    t.configure([("cam-1", ["icmp", "rtsp"]), ("cam-2", ["icmp"])])
    assert log.since(epoch, log.seq) is None
    epoch, seq = log.epoch, log.seq
    t.restore("cam-2", DeviceState.DOWN, 4, "icmp: timeout")
    assert log.since(epoch, seq) == ["cam-2"]


def test_a_reader_the_change_log_no_longer_holds_is_told_to_rebuild() -> None:
    t = StateTracker(down_after=1)
    t.configure([(f"cam-{i}", ["icmp"]) for i in range(3)])
    log = t.changes
    epoch, start = log.epoch, log.seq
    for run in range(2 * log.KEEP):
        t.observe(Observation(f"cam-{run % 3}", "icmp",
                              Status.OK if run % 2 else Status.DOWN, time=run))
    assert log.since(epoch, start) is None  # its place was dropped
    recent = log.seq - 5
    assert log.since(epoch, recent) is not None and len(log.since(epoch, recent) or []) == 5
