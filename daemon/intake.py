"""The centre's side of the pollers' link: a batch of observations from a poller goes
into the same pipeline a local check feeds (state tracker, rule engine, tickets,
metrics), each with the time it was made at the site, each sequence number once.

Deduplicated here: an observation numbered at or below the poller's mark was applied
already (its batch is a re-send after a lost answer, or a second poller's copy) and is
counted, not applied.  The mark moves in memory as the observations are applied and in
the store (tickets/poller_marks.py) before the answer goes back, so a poller is told
"taken" only for what a restarted centre would also refuse to apply again.  A centre
killed between applying and writing the mark applies that one batch again when it is
re-sent: the state tracker takes an observation it has seen as the same state, so what
can repeat is at most a rule's count of polls, never a ticket (one per fault episode).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from elvwatch.config.resolved import Config
from elvwatch.daemon.site_links import site_intervals
from elvwatch.exporters.multisite_metrics import PollerIntake
from elvwatch.probes.base import Observation
from elvwatch.tickets.poller_marks import Taken, advance_mark, read_marks
from elvwatch.tickets.site_leases import claim
from elvwatch.tickets.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Poller:
    last_seq: int = 0
    stored_seq: int = 0  # the mark as last written to the store
    heard_at: float | None = None
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    standby: int = 0
    skipped_said: set[str] = field(default_factory=set)


class Intake:
    def __init__(self, apply: Callable[[Observation], None]) -> None:
        self._apply = apply
        self._pollers: dict[str, _Poller] = {}
        self._loaded = False
        self._holders: dict[str, str] = {}  # site → the poller whose results count
        # One batch at a time: the mark is read, the batch applied and the mark written
        # without another batch of the same poller in between.
        self._lock = asyncio.Lock()

    async def take(self, store: Store, config: Config, poller: str,
                   batch: Sequence[tuple[int, Observation]]) -> Taken:
        """Apply what is new in ``batch`` (in order) and record the poller's mark;
        StoreError when the mark cannot be written (the sender retries)."""
        async with self._lock:
            if not self._loaded:
                for name, (seq, heard) in (await read_marks(store)).items():
                    self._pollers[name] = _Poller(last_seq=seq, stored_seq=seq, heard_at=heard)
                self._loaded = True
            state = self._pollers.setdefault(poller, _Poller())
            served = set(config.model.centre.pollers[poller].sites) \
                if config.model.centre is not None and poller in config.model.centre.pollers \
                else set()
            fresh = [(seq, obs) for seq, obs in batch if seq > state.last_seq]
            duplicates = len(batch) - len(fresh)
            now = time.time()
            every = site_intervals(config)
            leases = await claim(store, poller, served, now, every) if served else {}
            for site, lease in leases.items():
                if lease is not None and self._holders.get(site) != lease.poller:
                    log.info("site %s: poller %s holds the lease%s", site, lease.poller,
                             f" (was {self._holders[site]})" if site in self._holders else "")
                    self._holders[site] = lease.poller
            applied = standby = 0
            skipped: list[str] = []
            for seq, obs in fresh:
                state.last_seq = seq
                device = config.devices.get(obs.device)
                if device is None or device.config.site not in served:
                    skipped.append(f"{obs.device}: " + (
                        "not configured at the centre" if device is None
                        else f"site {device.config.site!r} is not this poller's"))
                    continue
                lease = leases.get(device.config.site)
                if lease is None or lease.poller != poller or obs.time < lease.since:
                    standby += 1  # another poller serves the site: its results count
                    continue
                self._apply(obs)
                applied += 1
            state.heard_at = now
            state.applied += applied
            state.duplicates += duplicates
            state.standby += standby
            state.skipped += len(skipped)
            for reason in skipped:
                if reason not in state.skipped_said and len(state.skipped_said) < 1000:
                    state.skipped_said.add(reason)
                    log.warning("poller %s: observation skipped, %s", poller, reason)
            if state.last_seq != state.stored_seq:  # a heartbeat or re-send writes nothing
                await advance_mark(store, poller, state.last_seq, now)
                state.stored_seq = state.last_seq
            return Taken(applied, duplicates, state.last_seq, tuple(dict.fromkeys(skipped)),
                         standby=standby,
                         active=tuple(sorted(s for s, lease in leases.items()
                                             if lease is not None and lease.poller == poller)),
                         renew_seconds=min((every[s] for s in served), default=3.0) / 3)

    async def idle(self) -> None:
        """Wait for the batch being taken, if any (a stopping centre writes after it)."""
        async with self._lock:
            pass

    def heard(self) -> dict[str, float | None]:
        """poller → when its last batch arrived (None: not since this centre started
        and never before)."""
        return {name: p.heard_at for name, p in self._pollers.items()}

    def stats(self) -> Mapping[str, PollerIntake]:
        return {name: PollerIntake(p.applied, p.duplicates, p.skipped, p.last_seq, p.heard_at,
                                   p.standby)
                for name, p in self._pollers.items()}

    @property
    def holders(self) -> Mapping[str, str]:
        """site → the poller holding its lease, as this centre last saw it."""
        return dict(self._holders)
