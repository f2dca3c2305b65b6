"""Observations as a site poller sends them to the centre: numbered, in JSON, checked
on arrival like any device-sent text (bounded, no control characters, no label names).

A poller numbers each observation once (``seq``, increasing for as long as the poller
exists, across restarts); the centre applies a number once.  The time is the poller's:
when the check ran, not when the centre heard of it.
"""

from __future__ import annotations

import math
from itertools import pairwise
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.base import MAX_TEXT, Observation, Reason, Status, bounded

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
MAX_VALUES = 512  # named values of one observation (an SNMP walk of a 48-port switch)
MAX_BATCH = 10_000
Text = Annotated[str, Field(max_length=4 * MAX_TEXT)]


class WireObservation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1)
    device: Name
    check: Name
    status: Status
    values: dict[Annotated[str, Field(max_length=200)], float | Text] = Field(
        default_factory=dict, max_length=MAX_VALUES)
    latency: float | None = Field(None, ge=0)
    error: Text | None = None
    time: float = Field(gt=0)
    info: dict[Annotated[str, Field(max_length=64)], Text] = Field(
        default_factory=dict, max_length=32)
    reason: Reason | None = None

    @field_validator("time", "latency")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def observation(self) -> Observation:
        """The observation, its strings bounded as the probes bound theirs."""
        return Observation(
            device=self.device, check=self.check, status=self.status,
            values=MappingProxyType({bounded(k, 200): v if isinstance(v, float)
                                     else bounded(v) for k, v in self.values.items()}),
            latency=self.latency, error=bounded(self.error) if self.error else None,
            time=self.time, reason=self.reason,
            info=MappingProxyType({bounded(k, 64): bounded(v) for k, v in self.info.items()}))


class Batch(BaseModel):
    """One request of a poller: its id and observations in the order they were made;
    none at all renews the poller's leases (a heartbeat)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poller: Name
    observations: list[WireObservation] = Field(max_length=MAX_BATCH)

    @field_validator("observations")
    @classmethod
    def _in_order(cls, value: list[WireObservation]) -> list[WireObservation]:
        if any(b.seq <= a.seq for a, b in pairwise(value)):
            raise ValueError("sequence numbers must increase")
        return value


def to_wire(obs: Observation) -> dict[str, object]:
    """``obs`` as JSON-ready data, without its number (the buffer gives it one)."""
    out: dict[str, object] = {
        "device": obs.device, "check": obs.check, "status": obs.status.value,
        "time": obs.time}
    if obs.values:
        out["values"] = {k: float(v) if isinstance(v, int | float) and not isinstance(v, bool)
                         else str(v) for k, v in obs.values.items()}
    if obs.latency is not None:
        out["latency"] = obs.latency
    if obs.error:
        out["error"] = obs.error
    if obs.info:
        out["info"] = dict(obs.info)
    if obs.reason is not None:
        out["reason"] = obs.reason.value
    return out
