"""Value types the rule engine hands to the ticket stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """The contract's fault classes: response/repair deadlines differ per class."""

    GENERAL = "general"
    MAJOR = "major"
    EMERGENCY = "emergency"


class FaultState(StrEnum):
    INACTIVE = "inactive"   # condition false
    PENDING = "pending"     # condition true, not yet confirmed (for: N polls / duration)
    FIRING = "firing"       # confirmed: a ticket is due
    CLEARED = "cleared"     # was firing, condition false for clear: M polls


def fingerprint(site: str, device: str, rule: str) -> str:
    """Stable id of one fault of one rule on one device (the ticket key)."""
    return hashlib.sha256(f"{site}\x00{device}\x00{rule}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class FaultTransition:
    """A (device, rule) fault changed state.

    ``root_cause`` is set when a parent device's fault explains this one (topology):
    such a transition is recorded but does not get its own ticket; the parent's fault
    lists it in ``affected``.  ``suppressed_by`` names a silence or maintenance window
    that mutes it (recorded, ticketed on expiry if still firing).
    """

    fingerprint: str
    rule: str
    device: str
    site: str
    system: str
    kind: str
    name_zh: str
    name_en: str
    severity: str
    previous: FaultState
    state: FaultState
    at: float
    summary: str = ""
    root_cause: str | None = None
    affected: tuple[str, ...] = field(default=())
    suppressed_by: str | None = None
