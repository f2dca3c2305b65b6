"""A site poller's link to the centre: what its checks see goes into the buffer
(daemon/poller_buffer.py) and from there, oldest first, to the centre's
``POST /api/v1/ingest`` — outbound only, over HTTPS, with the poller's own token.

At least once: a batch leaves the buffer only after the centre answered 200, so one
whose answer was lost is sent again, and the centre, which applies each sequence number
once (tickets/poller_marks.py), ignores what it already has.  Every failure is retried
with doubling backoff and nothing is given up on: a refusal (a wrong token, an unknown
poller) is a mistake someone has to fix, and the buffer keeps the observations until
then — or drops the oldest, said and counted, when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

import aiohttp

from elvwatch.config.roles import PollerConfig
from elvwatch.daemon.poller_buffer import PollerBuffer, describe
from elvwatch.exporters.multisite_metrics import ForwarderStats
from elvwatch.probes.base import Observation, Secret, bounded
from elvwatch.probes.observation_wire import to_wire

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
# What the checks saw is written to the buffer this often: a crash loses at most this
# much, and one transaction per flush, not per observation, keeps a small box's disk idle.
FLUSH_SECONDS = 0.2
RETRY_MIN_SECONDS = 0.5
# Doubling up to this: a link back after a long outage is found within half a minute.
RETRY_MAX_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0
# With nothing to send, a poller still sends (an empty batch) this often, until the
# centre says how often its leases need renewing (a third of their time to live).
RENEW_SECONDS = 1.0


class Refused(Exception):
    """The centre answered, but not with 200: the message says what it said."""


class Forwarder:
    def __init__(self, settings: PollerConfig, token: Secret) -> None:
        self.settings = settings
        self._token = token
        self._pending: list[tuple[float, dict[str, object]]] = []
        self._stored = asyncio.Event()
        self._buffer: PollerBuffer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._buffered = 0
        self._forwarded = 0
        self._failures = 0
        self._last_success: float | None = None
        self._down_since: float | None = None
        self._active: list[object] | None = None  # the sites the centre says it serves
        self._renew = RENEW_SECONDS
        self._sent_at = 0.0  # monotonic

    async def start(self) -> None:
        settings = self.settings
        self._buffer = await PollerBuffer.open(settings.buffer.path,
                                               settings.buffer.max_observations)
        self._buffered = await self._buffer.count()
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=1),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))
        self._tasks = [asyncio.create_task(self._keep(), name="poller buffer"),
                       asyncio.create_task(self._send_all(), name="poller forwarder")]
        log.info("poller %s: forwarding to %s (%d observations waiting)", settings.id,
                 settings.centre_url, self._buffered)

    def put(self, obs: Observation) -> None:
        self._pending.append((obs.time, to_wire(obs)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._buffer is not None:
            await self._store_pending()  # what the last checks saw waits for the next start
            await self._buffer.close()
            self._buffer = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> ForwarderStats:
        return ForwarderStats(
            buffered=self._buffered + len(self._pending),
            dropped=self._buffer.dropped if self._buffer is not None else 0,
            forwarded=self._forwarded, failures=self._failures,
            last_success=self._last_success)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self._store_pending()

    async def _store_pending(self) -> None:
        assert self._buffer is not None
        if not self._pending:
            return
        items, self._pending = self._pending, []
        dropped = await self._buffer.append(items)
        self._buffered += len(items)
        if dropped is not None:
            self._buffered -= dropped.count
            log.warning("%s", describe(dropped, self._buffer.limit))
        self._stored.set()

    async def _send_all(self) -> None:
        assert self._buffer is not None
        retry = RETRY_MIN_SECONDS
        while True:
            rows = await self._buffer.head(self.settings.batch_max)
            quiet = time.monotonic() - self._sent_at
            if not rows and quiet < self._renew:
                self._stored.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stored.wait(), self._renew - quiet)
                continue
            try:
                await self._send(rows)
            except (Refused, aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._failed(exc, retry)
                await asyncio.sleep(retry)
                retry = min(RETRY_MAX_SECONDS, retry * 2)
                continue
            retry = RETRY_MIN_SECONDS
            self._sent_at = time.monotonic()
            self._last_success = time.time()
            if rows:  # else a heartbeat
                await self._buffer.remove_through(rows[-1][0])
                self._buffered -= len(rows)
                self._forwarded += len(rows)
            if self._down_since is not None:
                log.info("centre %s takes observations again after %.0fs; %d waiting",
                         self.settings.centre_url, time.time() - self._down_since,
                         self._buffered)
                self._down_since = None

    async def _send(self, rows: list[tuple[int, dict[str, object]]]) -> None:
        assert self._session is not None
        body = {"poller": self.settings.id,
                "observations": [{"seq": seq, **item} for seq, item in rows]}
        async with self._session.post(
                self.settings.centre_url + INGEST_PATH, json=body,
                headers={"Authorization": f"Bearer {self._token.value}"}) as resp:
            if resp.status != 200:
                raise Refused(f"HTTP {resp.status}: {bounded(await resp.text(), 300)}")
            answer = await resp.json()
        if not isinstance(answer, dict):
            return
        renew = answer.get("renew_seconds")
        if isinstance(renew, int | float) and 0.05 <= renew <= 3600:
            self._renew = float(renew)
        active = answer.get("active")
        if isinstance(active, list) and active != self._active:
            standby = sorted(set(self.settings.sites) - {str(a) for a in active})
            log.info("poller %s: active for %s%s", self.settings.id, ", ".join(
                str(a) for a in active) or "no site", f"; standby for {', '.join(standby)}"
                     if standby else "")
            self._active = active
        skipped = answer.get("skipped")
        if skipped:
            log.warning("centre skipped %s observations of devices it does not take from "
                        "this poller: %s", len(skipped), bounded(", ".join(
                            str(s) for s in skipped[:10]), 300))

    def _failed(self, exc: BaseException, retry: float) -> None:
        self._failures += 1
        text = bounded(str(exc) or type(exc).__name__, 300)
        if self._down_since is None:
            self._down_since = time.time()
            log.warning("centre %s: cannot forward, buffering (%d waiting), retrying in "
                        "%.1fs: %s", self.settings.centre_url, self._buffered, retry, text)
        else:
            log.info("centre %s still unreachable, retrying in %.1fs: %s",
                     self.settings.centre_url, retry, text)
