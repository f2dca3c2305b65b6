"""The metrics exposition: escaping, counters, histograms, removed devices."""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from elvwatch.daemon.scheduler import LAG_BUCKETS, SchedulerStats
from elvwatch.exporters.exposition import render
from elvwatch.exporters.metrics import DeviceLabels, Snapshot, families
from elvwatch.probes.base import Observation, Status
from elvwatch.rules.state import StateTracker


def snapshot(tracker: StateTracker, labels: list[DeviceLabels],
             stats: SchedulerStats | None = None) -> Snapshot:
    return Snapshot(devices=[(lab, tracker.devices[lab.device]) for lab in labels],
                    scheduler=stats or SchedulerStats(), lag_buckets=LAG_BUCKETS, jobs=1,
                    reload_ok=True, reload_time=1.0, store_pending=0, store_errors=0)


def parse(body: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_device_supplied_text_is_escaped_and_bounded_in_info_labels() -> None:
    tracker = StateTracker()
    tracker.configure([("cam-1", ["onvif"])])
    nasty = '<script>"x"\\\n' + "A" * 200
    tracker.observe(Observation("cam-1", "onvif", Status.OK, info={"vendor": nasty}))
    labels = [DeviceLabels("cam-1", "s1", "cctv", "camera", model="DS-2CD")]
    parsed = parse(render(families(snapshot(tracker, labels))))
    ((_, info_labels, value),) = parsed["elvwatch_device_info"]
    assert value == 1.0
    assert info_labels["vendor"].startswith('<script>"x"\\\n')
    assert len(info_labels["vendor"]) == 64
    assert info_labels["model"] == "DS-2CD"


def test_lag_histogram_is_cumulative_and_counters_end_in_total() -> None:
    stats = SchedulerStats(runs=Counter({"ok": 5, "down": 2}))
    for lag in (0.001, 0.003, 0.2, 7.0, 30.0):
        stats.observe_lag(lag)
    tracker = StateTracker()
    parsed = parse(render(families(snapshot(tracker, [], stats))))
    buckets = {s[1]["le"]: s[2] for s in parsed["elvwatch_scheduler_lag_seconds"]
               if s[0].endswith("_bucket")}
    assert buckets["0.005"] == 2 and buckets["0.25"] == 3 and buckets["10.0"] == 4
    assert buckets["+Inf"] == 5
    runs = {s[1]["status"]: s[2] for s in parsed["elvwatch_scheduler_checks_run"]}
    assert runs == {"ok": 5.0, "degraded": 0.0, "down": 2.0, "unknown": 0.0}


def test_series_of_a_removed_device_disappear() -> None:
    tracker = StateTracker()
    tracker.configure([("a", ["icmp"]), ("b", ["icmp"])])
    for device in ("a", "b"):
        tracker.observe(Observation(device, "icmp", Status.OK,
                                    values={"icmp.rtt_seconds": 0.001}))
    both = [DeviceLabels(d, "s", "network", "switch") for d in ("a", "b")]
    parsed = parse(render(families(snapshot(tracker, both))))
    assert {s[1]["device"] for s in parsed["elvwatch_icmp_rtt_seconds"]} == {"a", "b"}
    tracker.configure([("a", ["icmp"])])
    parsed = parse(render(families(snapshot(tracker, both[:1]))))
    assert {s[1]["device"] for s in parsed["elvwatch_icmp_rtt_seconds"]} == {"a"}
    assert {s[1]["device"] for s in parsed["elvwatch_device_up"]} == {"a"}


def test_special_float_values_use_the_exposition_spelling() -> None:
    from elvwatch.exporters.exposition import number

    assert [number(v) for v in (float("nan"), float("inf"), float("-inf"), 2, 0.25)] == [
        "NaN", "+Inf", "-Inf", "2.0", "0.25"]


def test_a_scrape_shows_each_new_observation_and_reuses_the_text_of_the_rest() -> None:
    tracker = StateTracker(down_after=1)
    tracker.configure([("cam-1", ["icmp"]), ("cam-2", ["icmp"])])
    for device in ("cam-1", "cam-2"):
        tracker.observe(Observation(device, "icmp", Status.OK, time=10.0, latency=0.5,
                                    values={"icmp.rtt_seconds": 0.001}))
    labels = [DeviceLabels(d, "s1", "cctv", "camera") for d in ("cam-1", "cam-2")]
    first = parse(render(families(snapshot(tracker, labels))))
    kept = labels[1].cache["text"]
    tracker.observe(Observation("cam-1", "icmp", Status.DOWN, time=20.0, latency=2.0,
                                values={"icmp.rtt_seconds": 0.25}, info={"vendor": "Uniview"}))
    second = parse(render(families(snapshot(tracker, labels))))
    assert labels[1].cache["text"] is kept  # cam-2 was not observed again

    def by_device(parsed: dict[str, list[tuple[str, dict[str, str], float]]], family: str
                  ) -> dict[str, float]:
        return {s[1]["device"]: s[2] for s in parsed[family]}

    assert by_device(first, "elvwatch_icmp_rtt_seconds") == {"cam-1": 0.001, "cam-2": 0.001}
    assert by_device(second, "elvwatch_icmp_rtt_seconds") == {"cam-1": 0.25, "cam-2": 0.001}
    assert by_device(second, "elvwatch_device_up") == {"cam-1": 0.0, "cam-2": 1.0}
    assert by_device(second, "elvwatch_check_last_run_timestamp_seconds") == {
        "cam-1": 20.0, "cam-2": 10.0}
    assert by_device(second, "elvwatch_device_state_change_timestamp_seconds") == {
        "cam-1": 20.0, "cam-2": 10.0}
    info = {s[1]["device"]: s[1]["vendor"] for s in second["elvwatch_device_info"]}
    assert info == {"cam-1": "Uniview", "cam-2": ""}
