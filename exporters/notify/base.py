"""What every notifier shares: the rendered message, the send result, redaction.

A notifier is a small class with one coroutine, ``send(message) -> SendResult``, and
``close()``.  A failure is data, not an exception: the result says whether it is worth
retrying (``recoverable``: 5xx, 429, timeouts, connection errors; a 4xx or a bad
credential will fail the same way again).  Only bugs raise.

Errors::

    NotifyError             base of every error this package raises on purpose
    └── NotifyConfigError   receivers/credentials cannot work (unknown name, missing secret)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from elvwatch.tickets.events import TicketEvent


class NotifyError(Exception):
    """An error the notify package raises on purpose."""


class NotifyConfigError(NotifyError):
    """The notify configuration cannot work; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Message:
    """One notification rendered for people, in one language.

    ``events`` are the ticket events it tells about: one, or several when a storm is
    summarised.  ``id`` is stable for the same events and receiver (a receiver that
    sees it twice after a crash can drop the copy)."""

    id: str
    language: str
    subject: str
    plain: str
    html: str
    markdown: str
    events: tuple[TicketEvent, ...] = field(default=())

    @property
    def summary(self) -> bool:
        return len(self.events) > 1


@dataclass(frozen=True, slots=True)
class SendResult:
    """How one send went.  ``error`` is safe to log: no secrets, no webhook keys."""

    ok: bool
    recoverable: bool = False
    error: str | None = None
    status: int | None = None

    @classmethod
    def success(cls, status: int | None = None) -> SendResult:
        return cls(ok=True, status=status)

    @classmethod
    def failure(cls, error: str, *, recoverable: bool, status: int | None = None) -> SendResult:
        return cls(ok=False, recoverable=recoverable, error=error, status=status)


class Notifier(Protocol):
    """One configured receiver."""

    name: str

    async def send(self, message: Message) -> SendResult: ...

    async def close(self) -> None: ...


def http_status_recoverable(status: int) -> bool:
    """Server trouble and throttling pass; any other refusal will be repeated."""
    return status >= 500 or status in (408, 425, 429)


_QUERY_SECRET = re.compile(r"(?i)\b(key|access_token|token|sign|secret)=([^&\s#]+)")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secret values and secret-looking query parameters replaced by
    ***: library errors quote the URL they failed on, and a bot's URL holds its key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}=***", text)
