"""Silences and maintenance windows: who muted what, why, and until when.

A :class:`Silence` matches fault labels (``site``, ``device``, ``system``, ``kind``,
``rule``; each a value or a list of values, all given labels must match) between
``starts`` and ``until``.  A maintenance window is a silence that starts in the future.
The :class:`Silencer` answers one question, ``mutes(labels) -> silence id | None``; the
engine records a muted fault with ``suppressed_by`` instead of dropping it, and
re-emits it unmuted when the silence ends while the fault still fires.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

LABELS = ("site", "device", "system", "kind", "rule")
Label = Literal["site", "device", "system", "kind", "rule"]


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: Mapping[str, frozenset[str]]
    who: str
    why: str
    until: float
    starts: float = 0.0
    created: float = field(default_factory=time.time)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) in values for key, values in self.matchers.items())

    def active(self, now: float) -> bool:
        return self.starts <= now < self.until


def new_silence(matchers: Mapping[str, str | Iterable[str]], who: str, why: str,
                until: float, starts: float = 0.0, id: str | None = None,
                now: float | None = None) -> Silence:
    """A silence with checked matchers; a silence matching everything is refused."""
    clean: dict[str, frozenset[str]] = {}
    for key, value in matchers.items():
        if key not in LABELS:
            raise ValueError(f"unknown matcher {key!r} (known: {', '.join(LABELS)})")
        values = frozenset([value] if isinstance(value, str) else value)
        if not values:
            raise ValueError(f"matcher {key!r} has no values")
        clean[key] = values
    if not clean:
        raise ValueError("a silence needs at least one matcher")
    if until <= starts:
        raise ValueError("until must be after starts")
    return Silence(id=id or uuid.uuid4().hex[:12], matchers=clean, who=who, why=why,
                   until=until, starts=starts,
                   created=time.time() if now is None else now)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class SilenceConfig(BaseModel):
    """A silence or maintenance window written in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    matchers: dict[Label, Annotated[list[str], BeforeValidator(
        _as_list, json_schema_input_type=str | list[str])]]
    who: str = Field(min_length=1)
    why: str = Field(min_length=1)
    starts: datetime | None = None
    until: datetime

    @model_validator(mode="after")
    def _window(self) -> SilenceConfig:
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if self.starts is not None and self.until <= self.starts:
            raise ValueError("until must be after starts")
        return self

    def to_silence(self) -> Silence:
        matchers = {str(key): values for key, values in self.matchers.items()}
        return new_silence(matchers, self.who, self.why, self.until.timestamp(),
                           self.starts.timestamp() if self.starts else 0.0,
                           id=self.id or f"config-{self._digest()}")

    def _digest(self) -> str:
        # A stable id across restarts, so a fault muted by it keeps the same suppressed_by.
        import hashlib

        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


class Silencer:
    """The current silences; ``version`` changes with every add or expire."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._silences: dict[str, Silence] = {}
        self.version = 0

    def add(self, silence: Silence) -> Silence:
        self._silences[silence.id] = silence
        self.version += 1
        return silence

    def expire(self, silence_id: str) -> Silence | None:
        """End a silence now; it stays listed as expired.  None if unknown."""
        silence = self._silences.get(silence_id)
        if silence is None:
            return None
        now = self._clock()
        if silence.until > now:
            silence = replace(silence, until=max(now, silence.starts))
            self._silences[silence_id] = silence
            self.version += 1
        return silence

    def replace_all(self, silences: Iterable[Silence]) -> None:
        """Take a new set (after a config reload or from the store)."""
        self._silences = {s.id: s for s in silences}
        self.version += 1

    def list(self, include_expired: bool = False) -> list[Silence]:
        now = self._clock()
        return sorted((s for s in self._silences.values() if include_expired or now < s.until),
                      key=lambda s: (s.starts, s.id))

    def mutes(self, labels: Mapping[str, str]) -> str | None:
        now = self._clock()
        for silence in self._silences.values():
            if silence.active(now) and silence.matches(labels):
                return silence.id
        return None

    def next_change(self, now: float) -> float | None:
        """The next time a silence starts or ends after ``now``."""
        times = [t for s in self._silences.values() for t in (s.starts, s.until) if t > now]
        return min(times, default=None)

    def prune(self, before: float) -> None:
        """Forget silences that ended before ``before``."""
        gone = [k for k, s in self._silences.items() if s.until < before]
        for key in gone:
            del self._silences[key]
        if gone:
            self.version += 1
