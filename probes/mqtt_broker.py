"""One managed connection to one MQTT broker (aiomqtt 2): connect, subscribe, hand every
message to a callback, and reconnect with backoff — resubscribing — when the broker goes.

Incoming messages wait in aiomqtt's queue, bounded at ``queue_size``; when it is full
the message is dropped and counted (``dropped``), never buffered without bound.  The
consumer drains the queue in batches so that a busy broker costs one wake-up per batch,
not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import aiomqtt

from elvwatch.probes.base import Credential, bounded
from elvwatch.probes.mqtt_settings import BrokerSettings

log = logging.getLogger(__name__)

# CONNACK and SUBACK must come back within this; a broker slower than that is treated
# as gone and retried with backoff, so a half-dead broker never hangs a reload or stop.
CALL_TIMEOUT = 10.0
# Filters per SUBSCRIBE packet: keeps each packet small for brokers with a packet limit.
SUBSCRIBE_CHUNK = 100
# Messages handled per wake-up before yielding to the loop: big enough to amortise the
# wake-up, small enough that the freshness sweep and HTTP stay responsive under a flood.
DRAIN_BATCH = 500
# A full queue is logged at most this often (the counter has every drop).
DROP_LOG_SECONDS = 10.0
# A clean session disconnect waits at most this on stop.
STOP_TIMEOUT = 5.0


class SourceState(StrEnum):
    """Lifecycle of a broker connection (and of the MQTT source as a whole)."""

    # Not running: never started, or stopped on purpose.
    STOPPED = "stopped"
    # Connected and subscribed; messages flow.
    STARTED = "started"
    # Connection refused or lost; waiting out the backoff before the next attempt.
    PAUSED = "paused"
    # The settings cannot work (unknown credentials, unreadable CA file); not retried
    # until the config changes.
    FAILED = "failed"


class BrokerConfigError(Exception):
    """The broker settings cannot work; the message is safe to log (no secrets)."""


OnMessage = Callable[[str, bytes], None]


class BrokerConnection:
    def __init__(self, name: str, settings: BrokerSettings,
                 credentials: Mapping[str, Credential], on_message: OnMessage, *,
                 queue_size: int, backoff_min: float, backoff_max: float) -> None:
        self.name = name
        self.settings = settings
        self._credentials = credentials
        self._on_message = on_message
        self._queue_size = queue_size
        self._backoff = (backoff_min, max(backoff_min, backoff_max))
        self.state = SourceState.STOPPED
        self.filters: dict[str, int] = {}
        self.received = 0
        self.dropped = 0
        self.connects = 0
        self.subscribe_refused = 0
        self.last_error: str | None = None
        self._client: aiomqtt.Client | None = None
        self._queue: asyncio.Queue[aiomqtt.Message] | None = None
        self._subscribed: dict[str, int] = {}
        self._sub_lock = asyncio.Lock()
        self._consuming = asyncio.Event()
        self._consuming.set()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0

    @property
    def connected(self) -> bool:
        return self.state is SourceState.STARTED

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt broker {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, STOP_TIMEOUT)
        if self.state is not SourceState.FAILED:
            self.state = SourceState.STOPPED

    async def set_filters(self, filters: Mapping[str, int]) -> None:
        """Subscribe to exactly ``filters`` (filter → QoS) from now on."""
        self.filters = dict(filters)
        try:
            await self._sync_subscriptions()
        except aiomqtt.MqttError as exc:
            # The connection loop notices the loss and resubscribes everything.
            log.debug("mqtt %s: subscription change deferred: %s", self.name, exc)

    # -- connection loop -------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, object]:
        s = self.settings
        kwargs: dict[str, object] = {"keepalive": s.keepalive, "timeout": CALL_TIMEOUT,
                                     "identifier": s.client_id}
        if s.credentials is not None:
            cred = self._credentials.get(s.credentials)
            if cred is None:
                raise BrokerConfigError(f"unknown credentials {s.credentials!r}")
            kwargs["username"] = cred.username
            kwargs["password"] = cred.password.value if cred.password else None
        if s.tls:
            context = _ClosingContext(ssl.PROTOCOL_TLS_CLIENT)
            try:
                if s.ca_file:
                    context.load_verify_locations(cafile=str(s.ca_file))
                else:
                    context.load_default_certs()
            except (OSError, ssl.SSLError) as exc:
                raise BrokerConfigError(f"ca_file {s.ca_file}: {exc}") from None
            if s.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            kwargs["tls_context"] = context
        return kwargs

    async def _run(self) -> None:
        try:
            kwargs = self._client_kwargs()
        except BrokerConfigError as exc:
            self.state, self.last_error = SourceState.FAILED, str(exc)
            log.error("mqtt broker %s: %s; not connecting", self.name, exc)
            return
        delay = self._backoff[0]
        while True:
            client = aiomqtt.Client(
                self.settings.host, self.settings.effective_port,
                queue_type=self._queue_class(), max_queued_incoming_messages=self._queue_size,
                logger=logging.getLogger("elvwatch.probes.mqtt.client"),
                **kwargs)  # type: ignore[arg-type]
            try:
                async with client:
                    self._client, self._subscribed = client, {}
                    self.connects += 1
                    await self._sync_subscriptions()
                    self.state, self.last_error = SourceState.STARTED, None
                    log.info("mqtt broker %s: connected, %d filters", self.name,
                             len(self._subscribed))
                    delay = self._backoff[0]
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                self.last_error = bounded(str(exc) or type(exc).__name__)
                log.warning("mqtt broker %s: %s; retrying in %.1fs", self.name,
                            self.last_error, delay)
            finally:
                self._client = None
                tls = kwargs.get("tls_context")
                if isinstance(tls, _ClosingContext):
                    tls.close_last()
            self.state = SourceState.PAUSED
            # Jitter: many daemons losing one broker must not reconnect in lockstep.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self._backoff[1], delay * 2)

    async def _consume(self, client: aiomqtt.Client) -> None:
        # aiomqtt's iterator costs a task per message; it is only used to wait while
        # idle (and to notice a disconnect).  Under load paho adds one message per loop
        # turn, so the queue is drained after each plain yield instead.
        async for message in client.messages:
            await self._consuming.wait()
            self._deliver(message)
            empty_turns = 0
            while empty_turns < 2:
                await asyncio.sleep(0)
                await self._consuming.wait()
                queue = self._queue
                if queue is None or queue.empty():
                    empty_turns += 1
                    continue
                empty_turns = 0
                for _ in range(min(DRAIN_BATCH, queue.qsize())):
                    self._deliver(queue.get_nowait())

    def hold(self) -> None:
        """Stop handling messages: they wait in the bounded queue, and beyond
        ``queue_size`` are dropped and counted.  For tests and the benchmark that prove
        the bound (in one event loop, reading and handling otherwise keep pace)."""
        self._consuming.clear()

    def release(self) -> None:
        self._consuming.set()

    def _deliver(self, message: aiomqtt.Message) -> None:
        self.received += 1
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else str(payload).encode()
        try:
            self._on_message(message.topic.value, payload)
        except Exception:
            # A bug in handling one message must not take the broker connection down.
            log.exception("mqtt broker %s: handling a message failed", self.name)

    async def _sync_subscriptions(self) -> None:
        async with self._sub_lock:
            client = self._client
            if client is None:
                return
            wanted = dict(self.filters)
            new = [(f, q) for f, q in wanted.items() if self._subscribed.get(f) != q]
            gone = [f for f in self._subscribed if f not in wanted]
            for i in range(0, len(new), SUBSCRIBE_CHUNK):
                chunk = new[i:i + SUBSCRIBE_CHUNK]
                granted = await client.subscribe(chunk, timeout=CALL_TIMEOUT)
                for (topic_filter, qos), code in zip(chunk, granted, strict=False):
                    if _code(code) >= 0x80:
                        self.subscribe_refused += 1
                        log.warning("mqtt broker %s refused a subscription to %r",
                                    self.name, bounded(topic_filter))
                    else:
                        self._subscribed[topic_filter] = qos
            for i in range(0, len(gone), SUBSCRIBE_CHUNK):
                chunk_gone = gone[i:i + SUBSCRIBE_CHUNK]
                await client.unsubscribe(chunk_gone, timeout=CALL_TIMEOUT)
                for topic_filter in chunk_gone:
                    self._subscribed.pop(topic_filter, None)

    def _queue_class(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        owner = self

        class CountingQueue(asyncio.Queue[aiomqtt.Message]):
            """aiomqtt's incoming queue: a full queue drops and counts, and the owner
            keeps a handle so it can drain without a task per message."""

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                owner._queue = self

            def put_nowait(self, item: aiomqtt.Message) -> None:
                if self.full():
                    owner._dropped_one()
                    return
                super().put_nowait(item)

        return CountingQueue

    def _dropped_one(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_SECONDS:
            self._last_drop_log = now
            log.warning("mqtt broker %s: incoming queue full (%d); %d messages dropped so far",
                        self.name, self._queue_size, self.dropped)


class _ClosingContext(ssl.SSLContext):
    """paho-mqtt 2 leaves the socket open when the TLS handshake fails (bad certificate):
    remember the socket it wrapped so each attempt can close it, instead of one leaked
    socket per retry."""

    last_socket: ssl.SSLSocket | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.last_socket = sock
        return sock

    def close_last(self) -> None:
        sock, self.last_socket = self.last_socket, None
        if sock is not None:
            sock.close()


def _code(code: object) -> int:
    """A SUBACK return code as a number (an int in MQTT 3.1.1, a ReasonCode in 5)."""
    value = getattr(code, "value", code)
    return value if isinstance(value, int) else 0
