"""The Dispatcher: routes ticket events to receivers, rate-limits, retries, logs.

    submit(events) ─► routes ─► log.enqueue (pending rows) ─► one worker per receiver
    worker: token bucket ─► one message, or a summary of the backlog ─► send
            ─► ok: log.mark_sent │ recoverable: backoff, again │ else: log.mark_failed

A storm is summarised rather than flooding a group chat: when the receiver's bucket has
fewer tokens than its backlog needs, the whole backlog goes out as one message.

Stopping (or cancelling) a worker never abandons a send on the wire: the attempt and its
log write finish first (bounded by ``grace``), because a message the receiver accepted
but the log never recorded would go out again after the restart.  What is still queued
stays pending in the log and is sent by the next Dispatcher over the same log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from elvwatch.exporters.notify.base import Message, Notifier, SendResult
from elvwatch.exporters.notify.config import NotifyConfig
from elvwatch.exporters.notify.log import NotificationLog, Pending
from elvwatch.exporters.notify.messages import render_summary, zone
from elvwatch.exporters.notify.ratelimit import TokenBucket
from elvwatch.tickets.events import TicketEvent

log = logging.getLogger(__name__)

# Most events one summary lists (the message says how many more there were).
MAX_BATCH = 200


@dataclass
class ReceiverStats:
    """Counters per receiver, for the metrics collector and tests; they live as long as
    the daemon (a reload's new dispatcher carries them on)."""

    messages_sent: int = 0
    notifications_sent: int = 0
    notifications_failed: int = 0
    summaries_sent: int = 0
    retries: int = 0
    queued: int = 0
    # Notifications whose last attempt failed and that wait for their next one.
    retrying: int = 0
    # Wall-clock time of the last message the receiver accepted (None: none yet).
    last_success: float | None = None


def message_id(receiver: str, events: Sequence[TicketEvent]) -> str:
    """Stable for the same receiver and events: retries and restarts reuse it."""
    digest = hashlib.sha256("\n".join([receiver, *sorted(e.id for e in events)]).encode())
    return digest.hexdigest()[:32]


class Dispatcher:
    """Owns the notifiers it is given (closes them in ``stop``); the log is the caller's."""

    def __init__(self, config: NotifyConfig, notifiers: Mapping[str, Notifier],
                 log_: NotificationLog, *, grace: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 stats: dict[str, ReceiverStats] | None = None) -> None:
        self._config = config
        self._notifiers = dict(notifiers)
        self._log = log_
        self._grace = grace
        self._wall = wall
        self._sleep = sleep
        self._tz = zone(config.timezone)
        self._queues: dict[str, list[Pending]] = {n: [] for n in self._notifiers}
        self._queued: dict[str, set[tuple[str, str]]] = {n: set() for n in self._notifiers}
        self._wake = {n: asyncio.Event() for n in self._notifiers}
        self._buckets = {}
        for name in self._notifiers:
            rate = config.receivers[name].rate
            self._buckets[name] = TokenBucket(rate.per_minute, rate.burst, clock)
        known = stats or {}
        self.stats = {n: known.get(n) or ReceiverStats() for n in self._notifiers}
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        """Load what the log still owes, then start one worker per receiver."""
        async with self._lock:
            backlog = await self._log.pending()
            unknown = {p.receiver for p in backlog} - set(self._notifiers)
            if unknown:
                log.warning("notify: pending notifications for receivers no longer "
                            "configured are kept, not sent: %s", ", ".join(sorted(unknown)))
            self._queue([p for p in backlog if p.receiver in self._notifiers])
            self._started = True
        self._tasks = [asyncio.create_task(self._worker(name), name=f"notify-{name}")
                       for name in self._notifiers]

    async def submit(self, events: Sequence[TicketEvent]) -> int:
        """Route and record ``events``; returns how many notifications are newly owed.
        Events already known (same id, same receiver) are ignored.  Errors of the log
        propagate: the caller keeps its events and may submit them again."""
        items = [Pending(event, name) for event in events
                 for name in self._config.receivers_for(event) if name in self._notifiers]
        async with self._lock:
            new = await self._log.enqueue(items, self._wall())
            if self._started:
                self._queue(new)
        return len(new)

    async def stop(self) -> None:
        """Stop the workers (a send in flight finishes and is logged) and close the
        notifiers.  Anything still queued stays pending in the log."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._started = False
        for notifier in self._notifiers.values():
            await notifier.close()

    def _queue(self, items: Sequence[Pending]) -> None:
        for item in items:
            if item.key in self._queued[item.receiver]:
                continue
            self._queued[item.receiver].add(item.key)
            self._queues[item.receiver].append(item)
            self._wake[item.receiver].set()
        for name, queue in self._queues.items():
            self.stats[name].queued = len(queue)

    def _take(self, name: str, bucket: TokenBucket) -> list[Pending]:
        """The next message's notifications: one, or the backlog when tokens run short."""
        queue = self._queues[name]
        if len(queue) == 1 or bucket.available() >= len(queue) - 1:
            return queue[:1]
        return queue[:MAX_BATCH]

    async def _worker(self, name: str) -> None:
        queue, wake, bucket = self._queues[name], self._wake[name], self._buckets[name]
        while True:
            while not queue:
                wake.clear()
                await wake.wait()
            while (delay := bucket.wait_time()) > 0:
                await self._sleep(delay)
            bucket.try_take()
            batch = self._take(name, bucket)
            await self._deliver(name, batch)
            done = {item.key for item in batch}
            queue[:] = [item for item in queue if item.key not in done]
            self._queued[name] -= done
            self.stats[name].queued = len(queue)

    def _render(self, name: str, batch: Sequence[Pending]) -> Message:
        events = [item.event for item in batch]
        message = render_summary(events, language=self._config.receivers[name].language,
                                 tz=self._tz)
        return replace(message, id=message_id(name, events))

    async def _deliver(self, name: str, batch: Sequence[Pending]) -> None:
        message = self._render(name, batch)
        keys = [item.key for item in batch]
        policy = self._config.retry
        attempt = 0
        while True:
            attempt += 1
            result = await self._finish_even_if_cancelled(
                self._attempt(name, message, keys, attempt))
            if result.ok:
                return
            if result.recoverable and attempt < policy.attempts:
                delay = policy.delay(attempt)
                stats = self.stats[name]
                stats.retries += 1
                log.warning("notify %s: %s; retry %d in %gs", name, result.error, attempt,
                            delay)
                stats.retrying = len(keys)
                try:
                    await self._sleep(delay)
                finally:
                    stats.retrying = 0
                continue
            why = f"gave up after {attempt} attempts" if result.recoverable else "not retried"
            log.error("notify %s: message %s about %d event(s) failed (%s): %s", name,
                      message.id, len(keys), why, result.error)
            self.stats[name].notifications_failed += len(keys)
            await self._finish_even_if_cancelled(
                self._mark_failed(keys, result.error or "failed", attempt))
            return

    async def _attempt(self, name: str, message: Message, keys: list[tuple[str, str]],
                       attempt: int) -> SendResult:
        result = await self._notifiers[name].send(message)
        if result.ok:
            if result.error:
                log.warning("notify %s: delivered with warning: %s", name, result.error)
            await self._log.mark_sent(keys, message.id, attempt, self._wall())
            stats = self.stats[name]
            stats.messages_sent += 1
            stats.notifications_sent += len(keys)
            stats.summaries_sent += message.summary
            stats.last_success = self._wall()
        return result

    async def _mark_failed(self, keys: list[tuple[str, str]], error: str,
                           attempt: int) -> SendResult:
        await self._log.mark_failed(keys, error, attempt, self._wall())
        return SendResult.success()

    async def _finish_even_if_cancelled(self, work: Awaitable[SendResult]) -> SendResult:
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Let the send and its log write land (see the module docstring), then stop.
            try:
                await asyncio.wait_for(task, self._grace)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("notify: a send in flight did not finish within %gs of stop; "
                            "it may be sent again after the restart", self._grace)
            except Exception:
                log.exception("notify: a send in flight failed during stop")
            raise
