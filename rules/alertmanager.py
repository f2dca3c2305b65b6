"""Alerts from an existing Prometheus/Alertmanager as faults of our devices.

Alertmanager's webhook (payload version 4) posts groups of alerts, each ``firing`` or
``resolved`` with its labels, annotations, ``startsAt``/``endsAt`` and fingerprint.
Each alert is mapped to a configured device by its labels and becomes a
:class:`~elvwatch.rules.faults.FaultTransition` of rule ``alertmanager:<alertname>``, which the
ticket stage handles like any fault of the rule engine: firing opens (or keeps) one
ticket, resolved resolves it, a recurrence within the reopen window reopens it.

Mapping (``alertmanager:`` in the config, :class:`AlertmanagerConfig`):

* the first of ``device_labels`` present names the device: a device id, else a device
  host; an ``instance`` such as ``10.0.0.5:9100`` or ``http://cam-01.lan/`` matches
  by its host part;
* ``site_label`` (if present) must be the device's site — it also tells apart equal
  hosts at two communities;
* ``severity_label`` maps through ``severity_map`` to general/major/emergency
  (missing or unknown: general).

The ticket key is (site, device, rule, alert identity): the alert identity is the
alert's full label set, as in Alertmanager, so two alerts of one name on one device
(say two disks) are two tickets, and the same alert sent again is the same ticket.

This module is pure (no I/O): web/alertmanager.py is the HTTP side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.base import Target, bounded
from elvwatch.rules.faults import FaultState, FaultTransition, Severity, fingerprint

RULE_PREFIX = "alertmanager:"
# Alertmanager sends this for "no end yet" (Go's zero time).
_ZERO_TIME_YEAR = 1
MAX_ALERTS = 5000  # one request; Alertmanager's max_alerts keeps groups smaller


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Labels naming the device, tried in order; matched to a device id, then a host.
    device_labels: list[str] = Field(default_factory=lambda: ["device", "instance"],
                                     min_length=1)
    # The label naming the site; must match the device's site when present.
    site_label: str = "site"
    # The label whose value (severity_map) gives the ticket's severity.
    severity_label: str = "severity"
    # Label value (lower case) → contract severity; general/major/emergency map to
    # themselves.
    severity_map: dict[str, Severity] = Field(default_factory=lambda: {
        "critical": Severity.EMERGENCY, "page": Severity.EMERGENCY,
        "error": Severity.MAJOR, "high": Severity.MAJOR,
        "warning": Severity.GENERAL, "info": Severity.GENERAL,
    })


# -- the payload, as documented for webhook_config (extra fields are ignored: newer
# Alertmanagers add some, e.g. truncatedAlerts) ------------------------------------
class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # the payload's own names
    endsAt: datetime | None = None
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname", "").strip():
            raise ValueError("an alert needs an alertname label")
        return labels

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _zone(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("times need a time zone (RFC 3339)")
        return value


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)


@dataclass(frozen=True, slots=True)
class Unmapped:
    """An alert no configured device answers to, and why."""

    alertname: str
    labels: dict[str, str]
    reason: str


# -- mapping ------------------------------------------------------------------------
def host_of(value: str) -> str:
    """The host in an ``instance`` label: ``h:port``, ``[v6]:port``, a URL or a host."""
    value = value.strip()
    if "://" in value:
        return (urlsplit(value).hostname or "").lower()
    if value.startswith("["):
        return value[1:].partition("]")[0].lower()
    if value.count(":") == 1:
        return value.partition(":")[0].lower()
    return value.lower()


class DeviceIndex:
    """Devices (as their probe targets: id, host, site, system, kind) by id and by
    host, built once per config."""

    def __init__(self, devices: Iterable[Target]) -> None:
        self.devices = {d.device: d for d in devices}
        self.by_host: dict[str, list[Target]] = {}
        for device in self.devices.values():
            self.by_host.setdefault(device.host.lower(), []).append(device)

    def find(self, value: str, site: str | None) -> Target | str:
        """The device ``value`` names (in ``site`` if given), or why there is none."""
        device = self.devices.get(value)
        if device is not None and site in (None, device.site):
            return device
        candidates = self.by_host.get(value.lower()) or self.by_host.get(host_of(value), [])
        candidates = [d for d in candidates if site in (None, d.site)]
        if len(candidates) == 1:
            return candidates[0]
        where = f" at site {site!r}" if site else ""
        if candidates:
            ids = ", ".join(sorted(d.device for d in candidates))
            return f"{value!r} matches several devices{where} ({ids}); add a site label"
        return f"no device{where} has id or host {value!r}"


def severity_of(labels: Mapping[str, str], config: AlertmanagerConfig) -> Severity:
    value = labels.get(config.severity_label, "").strip().lower()
    if value in {s.value for s in Severity}:
        return Severity(value)
    return config.severity_map.get(value, Severity.GENERAL)


def alert_identity(labels: Mapping[str, str]) -> str:
    return "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))


def to_transitions(payload: Payload, index: DeviceIndex, config: AlertmanagerConfig,
                   mutes: Callable[[Mapping[str, str]], str | None] | None = None,
                   now: float | None = None
                   ) -> tuple[list[FaultTransition], list[Unmapped]]:
    """The fault transitions of the alerts that map to a device, and those that don't.

    A firing alert counts from ``startsAt`` (the contract's clocks start when
    Prometheus saw the fault), a resolved one ends at ``endsAt``; times in the future
    (a skewed clock) are taken as now."""
    now = time.time() if now is None else now
    out: list[FaultTransition] = []
    unmapped: list[Unmapped] = []
    for alert in payload.alerts:
        labels = alert.labels
        alertname = bounded(labels["alertname"].strip(), 100)
        site = labels.get(config.site_label) or None
        named = next((labels[k] for k in config.device_labels if labels.get(k)), None)
        if named is None:
            unmapped.append(Unmapped(alertname, _shown(labels), "no label of "
                                     f"{', '.join(config.device_labels)} names a device"))
            continue
        found = index.find(named, site)
        if isinstance(found, str):
            unmapped.append(Unmapped(alertname, _shown(labels), found))
            continue
        device = found
        rule = RULE_PREFIX + alertname
        firing = alert.status == "firing"
        at = alert.startsAt.timestamp() if firing else _ended(alert, now)
        summary = alert.annotations.get("summary", "").strip()
        name_en = bounded(summary or alertname, 200)
        name_zh = bounded(alert.annotations.get("summary_zh", "").strip() or name_en, 200)
        description = alert.annotations.get("description", "").strip()
        out.append(FaultTransition(
            fingerprint=fingerprint(device.site, device.device,
                                    rule + "\x00" + alert_identity(labels)),
            rule=rule, device=device.device, site=device.site, system=device.system,
            kind=device.kind, name_zh=name_zh, name_en=name_en,
            severity=severity_of(labels, config).value,
            previous=FaultState.PENDING if firing else FaultState.FIRING,
            state=FaultState.FIRING if firing else FaultState.CLEARED,
            at=min(at, now), summary=bounded(description or summary or alertname, 500),
            suppressed_by=mutes({"site": device.site, "device": device.device,
                                 "system": device.system, "kind": device.kind,
                                 "rule": rule}) if firing and mutes else None))
    return out, unmapped


def _ended(alert: Alert, now: float) -> float:
    if alert.endsAt is None or alert.endsAt.year <= _ZERO_TIME_YEAR:
        return now
    return alert.endsAt.timestamp()


def _shown(labels: Mapping[str, str]) -> dict[str, str]:
    # Echoed back in the 422 body: bounded, a few labels only.
    return {bounded(k, 64): bounded(v, 200) for k, v in list(labels.items())[:20]}
