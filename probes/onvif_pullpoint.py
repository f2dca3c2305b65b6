"""One camera's ONVIF PullPoint subscription: subscribe, pull, renew, resubscribe.

A :class:`PullPoint` runs one task per camera::

    STOPPED ──start()──► (subscribe) ──ok──► STARTED ──pull/renew fails──► resubscribe
                             │                  ▲                            │ at once
                             │ auth fails       └──────────ok────────────────┤
                             ▼                                               ▼ fails
                           PAUSED (hold-off, shared with the pull probe)   FAILED (backoff)

* Subscribe: the camera's clock is read first (pre-auth GetSystemDateAndTime) and the
  WS-UsernameToken signed with it, so a camera with a skewed clock still accepts us;
  the event service is found with GetServices (GetCapabilities on old firmware), and
  CreatePullPointSubscription asks for ``subscription_seconds``.  The subscription
  address the camera answers is re-pointed at the configured host (device-sent
  addresses are untrusted, and wrong behind NAT).
* Renew: at :data:`RENEW_FRACTION` of the time the camera actually granted (its own
  TerminationTime minus its own CurrentTime, so clock skew does not matter), and at
  least :data:`RENEW_MARGIN_SECONDS` before expiry.  A PullMessages long-poll never
  runs past the renewal time, so one task does both without racing.
* Advertised: GetEventProperties is read once per subscription (:attr:`advertised`,
  None when the camera cannot say), and on a recorder the recording jobs configured
  Active (:attr:`active_jobs`), so that only what the camera can report is reported.
* Primed: cameras send each property's current state (``Initialized`` messages) to a
  new subscription; :attr:`PullPoint.primed` turns true once the first PullMessages
  of the current subscription answered (the state it carried passed on first), and
  ``on_change`` is called then.
* Lost: a failed pull or renewal (the camera rebooted and forgot us, or the network
  blinked) resubscribes at once; if that fails too, the state is FAILED and retries
  back off from ``retry_min_seconds`` doubling to ``retry_max_seconds`` (with jitter).
* Pull floor: a camera that answers PullMessages at once and empty, ignoring the
  Timeout, would make the loop spin; after such an answer the next pull waits
  :data:`PULL_FLOOR_SECONDS`, doubling on each one after it up to ``pull_seconds``
  (a camera that holds the call, or has messages, resets it).
* Authentication failure: the credentials are held off for ``hold_off_seconds``
  (:func:`elvwatch.probes.onvif.hold_off`; a hold-off the pull probe set pauses us too), so the
  two never add up to an account lockout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from elvwatch.probes.base import Reason, Target
from elvwatch.probes.onvif import EVENTS_NS, RECORDING_NS, held_for, hold_off
from elvwatch.probes.onvif_client import (
    OnvifFailure,
    call,
    close_camera,
    discover_services,
    new_camera,
    reset_devicemgmt,
    serialize,
)
from elvwatch.probes.onvif_clock import camera_utc, clock_offset
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_events import Notification, notification_from_zeep
from elvwatch.probes.onvif_recording import active_jobs
from elvwatch.probes.onvif_topics import AdvertisedTopic, from_answer

# Renew at 80% of the granted time: cameras refuse a renewal that arrives after the
# termination time, and the last 20% leaves room for a slow answer and one retry.
RENEW_FRACTION = 0.8
# ...and never closer to expiry than this, for cameras that grant short subscriptions.
RENEW_MARGIN_SECONDS = 5.0
# Renewing more often than this is pointless load, whatever a broken camera grants.
MIN_RENEW_SECONDS = 1.0
# A PullMessages answer may take the long-poll time plus this before we call the
# camera gone (slow CPUs in cheap cameras answer late under load).
CALL_MARGIN_SECONDS = 10.0
# Messages per PullMessages: a burst larger than this is fetched by the next pull.
MESSAGE_LIMIT = 100
# An empty answer faster than this share of the Timeout asked is a camera that does not
# long-poll; then the next pull waits the floor, doubled per repeat, up to pull_seconds
# (events queue on the camera meanwhile: they are late, never lost).
EARLY_FRACTION = 0.5
PULL_FLOOR_SECONDS = 1.0
# Unsubscribe on stop is a courtesy (the camera drops the subscription at its
# termination time anyway); a dead camera must not hold up a reload or shutdown.
UNSUBSCRIBE_SECONDS = 2.0


class PullPointState(StrEnum):
    STOPPED = "stopped"   # no task: before start() and after stop()
    STARTED = "started"   # subscribed: pulling messages and renewing
    PAUSED = "paused"     # authentication failed: credentials held off, then retried
    FAILED = "failed"     # subscribing failed: retrying with backoff


Changed = Callable[["PullPoint"], None]
Received = Callable[["PullPoint", Notification], None]


class PullPoint:
    def __init__(self, target: Target, port: int, options: OnvifEventsOptions,
                 on_change: Changed, on_notification: Received,
                 gate: asyncio.Semaphore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target, self.port, self.options = target, port, options
        self.state = PullPointState.STOPPED
        self.error: str | None = None
        self.subscribes = 0        # successful CreatePullPointSubscription calls
        self.renewals = 0
        self.lost = 0              # subscriptions lost after they worked (reboots …)
        self.granted_seconds: float | None = None
        self.renew_at: float | None = None    # monotonic
        # The current subscription's first PullMessages answered: the camera has told
        # its properties' current state (Initialized), so "nothing heard" means "off".
        self.primed = False
        self.pulls = 0             # PullMessages calls
        # What GetEventProperties advertised (None: the camera could not say).
        self.advertised: list[AdvertisedTopic] | None = None
        # Recording job and recording tokens configured Active (None: not a recorder,
        # or unreadable): JobState events of other jobs are jobs off on purpose.
        self.active_jobs: set[str] | None = None
        self._early_empty = 0      # consecutive immediate empty answers
        self._on_change, self._on_notification = on_change, on_notification
        self._gate = gate or asyncio.Semaphore(1)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._camera: Any = None
        self._pull: Any = None
        self._manager: Any = None
        cred = target.credential
        self._user = cred.username if cred else None
        self._password = cred.password.value if cred and cred.password else None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(),
                                             name=f"onvif events {self.target.device}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._manager is not None and self.state is PullPointState.STARTED:
            with contextlib.suppress(OnvifFailure):
                await _timed(self._manager.Unsubscribe(), UNSUBSCRIBE_SECONDS)
        await self._close()
        self.state = PullPointState.STOPPED

    # -- the task ----------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.options.retry_min_seconds
        retrying = False     # resubscribing at once after losing a working subscription
        while True:
            held = held_for(self.target.host, self.port, self._user, self._password) \
                if self._user else 0.0
            if held:
                self._set(PullPointState.PAUSED, "authentication failed earlier; "
                          f"credentials not retried for another {held:.0f}s")
                await asyncio.sleep(held)
                continue
            try:
                async with self._gate:
                    await self._subscribe()
                retrying = False
                self._set(PullPointState.STARTED, None)
                delay = self.options.retry_min_seconds
                await self._pull_forever()
            except OnvifFailure as exc:
                await self._close()
                if exc.reason is Reason.AUTH and self._user and \
                        self.options.hold_off_seconds:
                    hold_off(self.target.host, self.port, self._user, self._password,
                             self.options.hold_off_seconds)
                    continue
                if self.state is PullPointState.STARTED and not retrying:
                    # It worked until now: the camera rebooted or dropped us.  Try
                    # again at once, quietly; report only if that fails too.
                    self.lost += 1
                    retrying = True
                    continue
                retrying = False
                self._set(PullPointState.FAILED, str(exc))
            # Jitter: after a site-wide power cut, cameras must not all resubscribe in
            # lockstep.
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(self.options.retry_max_seconds, delay * 2)

    def _set(self, state: PullPointState, error: str | None) -> None:
        changed = (state, error) != (self.state, self.error)
        self.state, self.error = state, error
        if changed:
            self._on_change(self)

    async def _subscribe(self) -> None:
        self.primed = False
        await self._close()
        options = self.options
        self._camera = camera = new_camera(
            self.target.host, self.port, self._user, self._password,
            device=self.target.device, max_answer_bytes=options.max_answer_bytes)
        timeout = options.call_timeout_seconds
        devicemgmt = await _timed(camera.create_devicemgmt_service(), timeout)
        sent = time.time()
        answer = serialize(await _timed(devicemgmt.authless_GetSystemDateAndTime(), timeout))
        when, _ = camera_utc(answer)
        if when is not None and options.adjust_time:
            camera.dt_diff = dt.timedelta(seconds=clock_offset(when, sent, time.time()))
            await reset_devicemgmt(camera)
            devicemgmt = await _timed(camera.create_devicemgmt_service(), timeout)
        await self._discover(devicemgmt)
        if EVENTS_NS not in camera.xaddrs:
            raise OnvifFailure("no events", "the device has no event service")
        events = await _timed(camera.create_events_service(), timeout)
        created = serialize(await _timed(events.CreatePullPointSubscription(
            {"InitialTerminationTime": f"PT{int(options.subscription_seconds)}S"}), timeout))
        reference = created.get("SubscriptionReference")
        address = reference.get("Address") if isinstance(reference, dict) else None
        text = address.get("_value_1") if isinstance(address, dict) else address
        if not isinstance(text, str) or not text.strip():
            raise OnvifFailure("malformed", "the subscription answer has no address")
        camera.xaddrs[f"{EVENTS_NS}/PullPointSubscription"] = camera.rewrite_url(text.strip())
        self.advertised = await self._advertised(events)
        self.active_jobs = await self._active_jobs()
        self._pull = await _timed(camera.create_pullpoint_service(), timeout)
        self._manager = await _timed(
            camera.create_subscription_service("PullPointSubscription"), timeout)
        self.subscribes += 1
        self._schedule_renewal(created)

    async def _advertised(self, events: Any) -> list[AdvertisedTopic] | None:
        try:
            answer = await _timed(events.GetEventProperties(),
                                  self.options.call_timeout_seconds)
        except OnvifFailure as exc:
            if exc.final:
                raise
            return None
        return from_answer(serialize(answer))

    async def _active_jobs(self) -> set[str] | None:
        if RECORDING_NS not in self._camera.xaddrs:
            return None
        seconds = self.options.call_timeout_seconds
        try:
            service = await _timed(self._camera.create_recording_service(), seconds)
            jobs, recordings = await _timed(active_jobs(service), seconds)
        except OnvifFailure as exc:
            if exc.final:
                raise
            return None
        return {*jobs, *recordings}

    async def _discover(self, devicemgmt: Any) -> None:
        camera = self._camera
        seconds = self.options.call_timeout_seconds
        await discover_services(camera, devicemgmt, lambda aw: _timed(aw, seconds))

    def _schedule_renewal(self, answer: dict[str, Any]) -> None:
        requested = self.options.subscription_seconds
        current, until = answer.get("CurrentTime"), answer.get("TerminationTime")
        granted = requested
        if isinstance(current, dt.datetime) and isinstance(until, dt.datetime):
            with contextlib.suppress(TypeError):       # naive vs aware from odd firmware
                seconds = (until - current).total_seconds()
                if seconds > 0:
                    granted = seconds
        self.granted_seconds = granted
        delay = min(granted * RENEW_FRACTION, granted - RENEW_MARGIN_SECONDS)
        self.renew_at = self._clock() + max(MIN_RENEW_SECONDS, delay)

    async def _pull_forever(self) -> None:
        options = self.options
        while True:
            assert self.renew_at is not None
            now = self._clock()
            if now >= self.renew_at:
                answer = serialize(await _timed(self._manager.Renew(
                    {"TerminationTime": f"PT{int(options.subscription_seconds)}S"}),
                    options.call_timeout_seconds))
                self.renewals += 1
                self._schedule_renewal(answer)
                now = self._clock()
            wait = max(1, int(min(options.pull_seconds, self.renew_at - now)))
            began = self._clock()
            answer = await _timed(self._pull.PullMessages(
                {"Timeout": dt.timedelta(seconds=wait), "MessageLimit": MESSAGE_LIMIT}),
                wait + CALL_MARGIN_SECONDS)
            self.pulls += 1
            messages = list(getattr(answer, "NotificationMessage", None) or [])
            await self._floor(bool(messages), self._clock() - began, wait)
            for message in messages[:MESSAGE_LIMIT]:
                try:
                    note = notification_from_zeep(message)
                except (AttributeError, TypeError, ValueError):
                    continue     # one odd message must not end the subscription
                self._on_notification(self, note)
            if not self.primed:
                self.primed = True
                self._on_change(self)

    async def _floor(self, had_messages: bool, took: float, wait: float) -> None:
        """Wait out the pull floor after an immediate empty answer (see the docstring)."""
        if had_messages or took >= wait * EARLY_FRACTION:
            self._early_empty = 0
            return
        self._early_empty += 1
        pause = min(self.options.pull_seconds,
                    PULL_FLOOR_SECONDS * 2 ** min(self._early_empty - 1, 16)) - took
        if self.renew_at is not None:
            pause = min(pause, self.renew_at - self._clock())
        if pause > 0:
            await asyncio.sleep(pause)

    async def _close(self) -> None:
        camera, self._camera, self._pull, self._manager = self._camera, None, None, None
        if camera is not None:
            await close_camera(camera)


async def _timed(awaitable: Awaitable[Any], seconds: float) -> Any:
    """A library call bounded in time; every failure an OnvifFailure."""
    try:
        async with asyncio.timeout(seconds):
            return await call(awaitable)
    except TimeoutError as exc:
        raise OnvifFailure("unreachable", "timed out") from exc
