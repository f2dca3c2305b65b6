"""The simulated camera's event side: property states, PullPoint subscriptions and
their answers (CreatePullPointSubscription, PullMessages, Renew, Unsubscribe).

Every event raised is a property (ONVIF "property events": tamper, signal loss, storage
failure, job state, motion) unless raised as a pulse (operation ""): its current state
is kept per topic and source, and a new subscription first gets one
``PropertyOperation="Initialized"`` message per property, as real cameras send
(``Deleted`` forgets it).  :meth:`EventBroker.forget` (a reboot) drops the
subscriptions, not the states.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

from elvwatch.lab import onvif_xml as X

# A PullMessages long-poll never holds a connection longer than this, whatever the
# client asked: tests stay fast and a stopped simulator never waits on it.
MAX_PULL_WAIT = 10.0
MAX_QUEUED = 256
SUBSCRIPTION_SECONDS = 60


@dataclass(slots=True)
class _Subscription:
    until: dt.datetime
    queue: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


_DURATION = re.compile(r"^P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)$")


def parse_duration(text: str, default: float) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class EventBroker:
    """Property states and subscriptions of one simulated camera."""

    def __init__(self, ignore_timeout: bool = False) -> None:
        # Answer PullMessages at once, even empty (firmware that does not long-poll).
        self.ignore_timeout = ignore_timeout
        self.pulls = 0                      # PullMessages answered
        self.subscriptions: dict[str, _Subscription] = {}
        # Property states, (topic, source items) → (topic, source, data), in the order
        # first raised: what a new subscription is told first.
        self.properties: dict[tuple[str, tuple[tuple[str, str], ...]],
                              tuple[str, dict[str, str], dict[str, str]]] = {}

    def raise_event(self, topic: str, source: dict[str, str], data: dict[str, str],
                    operation: str, now: dt.datetime) -> None:
        key = (topic, tuple(sorted(source.items())))
        if operation == "Deleted":
            self.properties.pop(key, None)
        elif operation:          # a pulse ("") has no state to tell new subscribers
            self.properties[key] = (topic, dict(source), dict(data))
        message = X.notification(topic, now, operation, source, data)
        for sub in self.subscriptions.values():
            sub.queue = [*sub.queue, message][-MAX_QUEUED:]
            sub.wake.set()

    def forget(self) -> None:
        """Drop every subscription (a reboot), waking their pending pulls."""
        for sub in self.subscriptions.values():
            sub.wake.set()
        self.subscriptions.clear()

    async def answer(self, operation: str, payload: ET.Element | None, sid: str,
                     base: str, clock: Callable[[], dt.datetime]) -> tuple[bytes, int]:
        now = clock()
        if operation == "CreatePullPointSubscription":
            sid = secrets.token_hex(8)
            seconds = parse_duration(text_of(payload, "InitialTerminationTime"),
                                     SUBSCRIPTION_SECONDS)
            until = now + dt.timedelta(seconds=seconds)
            initialized = [X.notification(topic, now, "Initialized", source, data)
                           for topic, source, data in self.properties.values()]
            self.subscriptions[sid] = _Subscription(until, initialized[-MAX_QUEUED:])
            return X.pullpoint_created(f"{base}/onvif/pullpoint/{sid}", now, until), 200
        sub = self.subscriptions.get(sid)
        if sub is not None and sub.until < now:
            del self.subscriptions[sid]
            sub = None
        if sub is None:
            return X.fault("wsrf-rw:ResourceUnknownFault", "unknown subscription"), 400
        if operation == "PullMessages":
            wait = min(parse_duration(text_of(payload, "Timeout"), 1.0), MAX_PULL_WAIT)
            self.pulls += 1
            if not sub.queue and not self.ignore_timeout:
                sub.wake.clear()
                await wait_for_event(sub.wake, wait)
            limit = int(text_of(payload, "MessageLimit") or 100)
            messages, sub.queue = sub.queue[:limit], sub.queue[limit:]
            return X.pull_messages(clock(), sub.until, messages), 200
        if operation == "Renew":
            seconds = parse_duration(text_of(payload, "TerminationTime"), SUBSCRIPTION_SECONDS)
            sub.until = now + dt.timedelta(seconds=seconds)
            return X.renewed(now, sub.until), 200
        if operation == "Unsubscribe":
            del self.subscriptions[sid]
            return X.unsubscribed(), 200
        return X.fault("ter:ActionNotSupported", f"{operation} not supported"), 400


def text_of(element: ET.Element | None, local: str) -> str:
    if element is None:
        return ""
    for child in element.iter():
        if child.tag.rsplit("}", 1)[-1] == local:
            return (child.text or "").strip()
    return ""


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


