"""The Prometheus collector: every family built at scrape time from a snapshot.

Nothing here holds state between scrapes; a removed device's series disappear with
it.  Labels are always ``site``, ``system``, ``device``, ``kind`` (and ``check`` for
check families).  Device-supplied text (vendor, model, firmware) appears only as the
bounded value of an ``_info`` label, never as a label name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from probes.base import Status
from rules.state import DeviceState, DeviceStatus

DEVICE_LABELS = ("site", "system", "device", "kind")
CHECK_LABELS = (*DEVICE_LABELS, "check")
INFO_LIMIT = 64
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class DeviceLabels:
    device: str
    site: str
    system: str
    kind: str
    vendor: str = ""
    model: str = ""
    firmware: str = ""

    @property
    def values(self) -> list[str]:
        return [self.site, self.system, self.device, self.kind]


class SchedulerView(Protocol):
    in_flight: int
    runs: Counter[str]
    overruns: int
    lag_bucket_counts: list[int]
    lag_sum: float
    lag_count: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    devices: Sequence[tuple[DeviceLabels, DeviceStatus]]
    scheduler: SchedulerView
    lag_buckets: Sequence[float]
    jobs: int
    reload_ok: bool
    reload_time: float
    store_pending: int
    store_errors: int


class ElvwatchCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from device_families(snap.devices)
        yield from scheduler_families(snap)


def metric_name(value_name: str) -> str:
    """``icmp.rtt_seconds`` → ``elvwatch_icmp_rtt_seconds``."""
    return "elvwatch_" + _NAME_OK.sub("_", value_name.replace(".", "_"))


def _bounded(text: str) -> str:
    return text if len(text) <= INFO_LIMIT else text[: INFO_LIMIT - 1] + "…"


def device_families(devices: Sequence[tuple[DeviceLabels, DeviceStatus]]) -> Iterator[Metric]:
    up = GaugeMetricFamily("elvwatch_device_up",
                           "1 if the device answers (up or degraded), 0 if it is down.",
                           labels=DEVICE_LABELS)
    state = GaugeMetricFamily("elvwatch_device_state",
                              "Current state of the device: 1 for the state it is in.",
                              labels=(*DEVICE_LABELS, "state"))
    since = GaugeMetricFamily("elvwatch_device_state_change_timestamp_seconds",
                              "When the device entered its current state.",
                              labels=DEVICE_LABELS)
    info = GaugeMetricFamily("elvwatch_device_info",
                             "Equipment archive data and what the device reported.",
                             labels=(*DEVICE_LABELS, "vendor", "model", "firmware"))
    check_up = GaugeMetricFamily("elvwatch_check_up",
                                 "1 if the last run of the check succeeded (ok or degraded).",
                                 labels=CHECK_LABELS)
    duration = GaugeMetricFamily("elvwatch_check_duration_seconds",
                                 "How long the last run of the check took.",
                                 labels=CHECK_LABELS)
    last_run = GaugeMetricFamily("elvwatch_check_last_run_timestamp_seconds",
                                 "When the check last finished.", labels=CHECK_LABELS)
    values: dict[str, GaugeMetricFamily] = {}
    for labels, status in devices:
        base = labels.values
        for st in DeviceState:
            state.add_metric([*base, st.value], 1.0 if status.state is st else 0.0)
        if status.state is not DeviceState.UNKNOWN:
            up.add_metric(base, 0.0 if status.state is DeviceState.DOWN else 1.0)
        if status.since is not None:
            since.add_metric(base, status.since)
        reported = status.info
        info.add_metric([*base, _bounded(reported.get("vendor") or labels.vendor),
                         _bounded(reported.get("model") or labels.model),
                         _bounded(reported.get("firmware") or labels.firmware)], 1.0)
        for name, check in status.checks.items():
            obs = check.last
            if obs is None:
                continue
            clabels = [*base, name]
            if obs.status is not Status.UNKNOWN:
                check_up.add_metric(clabels, 0.0 if obs.status is Status.DOWN else 1.0)
            if obs.latency is not None:
                duration.add_metric(clabels, obs.latency)
            last_run.add_metric(clabels, obs.time)
            for value_name, value in obs.values.items():
                if isinstance(value, str):
                    continue
                family = values.get(value_name)
                if family is None:
                    family = values[value_name] = GaugeMetricFamily(
                        metric_name(value_name), f"Value {value_name} from the last run.",
                        labels=CHECK_LABELS)
                family.add_metric(clabels, float(value))
    yield from (up, state, since, info, check_up, duration, last_run)
    yield from values.values()


def scheduler_families(snap: Snapshot) -> Iterator[Metric]:
    sched = snap.scheduler
    in_flight = GaugeMetricFamily("elvwatch_scheduler_checks_in_flight",
                                  "Checks running now.")
    in_flight.add_metric([], sched.in_flight)
    jobs = GaugeMetricFamily("elvwatch_scheduler_checks", "Checks scheduled.")
    jobs.add_metric([], snap.jobs)
    runs = CounterMetricFamily("elvwatch_scheduler_checks_run",
                               "Checks run since start, by result.", labels=["status"])
    for status in Status:
        runs.add_metric([status.value], sched.runs.get(status.value, 0))
    overruns = CounterMetricFamily(
        "elvwatch_scheduler_overruns",
        "Runs skipped because the previous run of the same check was still going.")
    overruns.add_metric([], sched.overruns)
    yield from (in_flight, jobs, runs, overruns, _lag_histogram(snap))
    reload_ok = GaugeMetricFamily("elvwatch_config_last_reload_successful",
                                  "1 if the last config (re)load succeeded.")
    reload_ok.add_metric([], 1.0 if snap.reload_ok else 0.0)
    reload_time = GaugeMetricFamily("elvwatch_config_last_reload_success_timestamp_seconds",
                                    "When the config was last loaded successfully.")
    reload_time.add_metric([], snap.reload_time)
    pending = GaugeMetricFamily("elvwatch_store_pending_writes",
                                "State transitions waiting to be written to the store.")
    pending.add_metric([], snap.store_pending)
    errors = CounterMetricFamily("elvwatch_store_errors", "Failed writes to the store.")
    errors.add_metric([], snap.store_errors)
    yield from (reload_ok, reload_time, pending, errors)


def _lag_histogram(snap: Snapshot) -> Metric:
    sched = snap.scheduler
    buckets: list[tuple[str, float]] = [
        (repr(bound), float(count))
        for bound, count in zip(snap.lag_buckets, sched.lag_bucket_counts, strict=True)
    ]
    buckets.append(("+Inf", float(sched.lag_count)))
    lag = HistogramMetricFamily("elvwatch_scheduler_lag_seconds",
                                "How late checks started after they were due.")
    lag.add_metric([], buckets, sched.lag_sum)
    return lag


def site_counts(devices: Sequence[tuple[DeviceLabels, DeviceStatus]]
                ) -> Mapping[tuple[str, str], Counter[str]]:
    """Devices per (site, system) by state — the summary ``elvwatch status`` prints."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for labels, status in devices:
        out.setdefault((labels.site, labels.system), Counter())[status.state.value] += 1
    return out
