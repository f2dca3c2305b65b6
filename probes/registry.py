"""The one map from a check type to its prober. Unknown types fail at config load."""

from __future__ import annotations

from probes.base import Prober
from probes.icmp import probe_icmp
from probes.tcp import probe_tcp

PROBERS: dict[str, Prober] = {
    "icmp": probe_icmp,
    "tcp": probe_tcp,
}


def prober_for(check_type: str) -> Prober:
    """The prober for ``check_type``; KeyError names the known ones."""
    try:
        return PROBERS[check_type]
    except KeyError:
        known = ", ".join(sorted(PROBERS))
        raise KeyError(f"unknown check type {check_type!r} (known: {known})") from None
