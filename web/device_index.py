"""The devices as the API lists them and the overview counts them, kept up to date a
device at a time.

Measured at 20,000 devices on the 2-core box, before this index: ``GET
/api/v1/devices`` built a pydantic model per device and encoded the whole list on every
request (0.45 s of CPU, in one piece on the checks' event loop), and the overview page
walked every device once per site (50 × 20,000 steps, 0.7 s).  Ten clients reading
kept the loop busy nearly all the time, and 55–95 % of checks started over 1 s late.

Here each device's JSON summary is encoded once and kept until its state changes; the
daemon's change log (rules/state.py ``ChangeLog``) says which devices did, so a read
re-encodes only those (a dirty set, not a rebuild).  Devices are indexed by site, in
id order, with each site's count per state and the set of devices not up kept as
states change.  A reload (a new config or device set) rebuilds the index; the
summaries are then encoded lazily, in slices between which the checks run.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from aiohttp import web

from elvwatch.config.resolved import Config, Device
from elvwatch.rules.state import DeviceState, DeviceStatus
from elvwatch.web import api
from elvwatch.web.view import DaemonView

# Summaries encoded between two turns of the event loop (about 10 µs each).
SLICE = 1000
STATES = tuple(state.value for state in DeviceState)


@dataclass(slots=True)
class _Entry:
    device: Device
    state: DeviceState
    fragment: bytes | None = None  # the JSON summary, None until (re)encoded


@dataclass(slots=True)
class _Site:
    ids: list[str] = field(default_factory=list)  # sorted
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    generation: int = 0


class DeviceIndex:
    """Read side of the device states for one running daemon (``view``)."""

    def __init__(self, view: DaemonView) -> None:
        self._view = view
        self._config: Config | None = None
        self._epoch = -1
        self._seq = 0
        # ETags name this index (a restarted daemon never repeats one) and its build.
        self._tag = secrets.token_hex(4)
        self._builds = 0
        self._generation = 0
        self._entries: dict[str, _Entry] = {}
        self._order: list[str] = []
        self._sites: dict[str, _Site] = {}
        self._stale: set[str] = set()
        self._attention: set[str] = set()  # devices not up
        self._dependents: dict[str, list[str]] = {}

    # -- keeping up ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in what changed since the last look (cheap when nothing did)."""
        view = self._view
        changes = view.changes
        if view.config is not self._config:
            self._rebuild()
            return
        dirty = changes.since(self._epoch, self._seq)
        if dirty is None:
            self._rebuild()
            return
        statuses = view.statuses
        for device_id in dirty:
            entry = self._entries.get(device_id)
            status = statuses.get(device_id)
            if entry is None or status is None:
                continue
            site = self._sites[entry.device.config.site]
            site.counts[entry.state.value] -= 1
            site.counts[status.state.value] += 1
            entry.state = status.state
            entry.fragment = None
            self._stale.add(device_id)
            if status.state is DeviceState.UP:
                self._attention.discard(device_id)
            else:
                self._attention.add(device_id)
            site.generation += 1
            self._generation += 1
        self._seq = changes.seq

    def _rebuild(self) -> None:
        view = self._view
        config, statuses, changes = view.config, view.statuses, view.changes
        self._config, self._epoch, self._seq = config, changes.epoch, changes.seq
        self._builds += 1
        self._generation = 0
        self._entries = {}
        self._sites = {site: _Site() for site in config.sites}
        self._dependents = {}
        for device in config.devices.values():
            status = statuses.get(device.id)
            if status is None:
                continue  # a reload under way: its states come before its config
            self._entries[device.id] = _Entry(device, status.state)
            site = self._sites.setdefault(device.config.site, _Site())
            site.ids.append(device.id)
            site.counts[status.state.value] += 1
            for parent in device.config.depends_on:
                self._dependents.setdefault(parent, []).append(device.id)
        self._order = sorted(self._entries)
        for site in self._sites.values():
            site.ids.sort()
        self._stale = set(self._entries)
        self._attention = {i for i, e in self._entries.items() if e.state is not DeviceState.UP}

    async def warm(self) -> None:
        """Encode the summaries not yet encoded, a slice at a time with the loop let run
        in between: after a reload that is every device (0.2 s at 20,000)."""
        for _ in range(len(self._stale) // SLICE + 1):  # bounded: a reload may refill it
            if len(self._stale) <= SLICE:
                return
            for device_id in list(islice(self._stale, SLICE)):
                self.fragment(device_id)
            await asyncio.sleep(0)
            self.refresh()

    # -- reading -------------------------------------------------------------------------
    def etag(self, site: str | None) -> str:
        """Changes whenever what a list of ``site`` (or of all devices) shows may have."""
        generation = self._generation if site is None else (
            self._sites[site].generation if site in self._sites else 0)
        return f"{self._tag}.{self._builds}.{generation}"

    def fragment(self, device_id: str) -> bytes:
        entry = self._entries[device_id]
        if entry.fragment is not None:
            return entry.fragment
        status = self._view.statuses.get(device_id)
        if status is None:  # gone in a reload under way: shown as it was, not kept
            return json.dumps(api.summary_fields(entry.device, DeviceStatus(
                device_id, entry.state)), ensure_ascii=False).encode()
        entry.fragment = json.dumps(api.summary_fields(entry.device, status),
                                    ensure_ascii=False).encode()
        self._stale.discard(device_id)
        return entry.fragment

    def select(self, site: str | None, state: DeviceState | None, after: str | None,
               limit: int | None) -> list[str]:
        """Ids in id order: of ``site``, in ``state``, after the id ``after``, at most
        ``limit`` of them."""
        if site is None:
            ids: Sequence[str] = self._order
        else:
            found = self._sites.get(site)
            ids = found.ids if found is not None else ()
        start = bisect.bisect_right(ids, after) if after is not None else 0
        if state is None:
            return list(ids[start:start + limit] if limit is not None else ids[start:])
        entries = self._entries
        chosen = (i for i in islice(ids, start, None) if entries[i].state is state)
        return list(islice(chosen, limit) if limit is not None else chosen)

    def site_ids(self, site: str) -> list[str]:
        found = self._sites.get(site)
        return list(found.ids) if found is not None else []

    def counts(self, site: str) -> dict[str, int]:
        found = self._sites.get(site)
        return dict(found.counts) if found is not None else dict.fromkeys(STATES, 0)

    def attention(self) -> Iterator[Device]:
        """The devices not up (in no order)."""
        entries = self._entries
        return (entries[i].device for i in self._attention)

    def dependents(self, device_id: str) -> list[str]:
        return list(self._dependents.get(device_id, ()))


# The web app's index (made with the app: web/device_api.py, read by the pages too).
DEVICE_INDEX = web.AppKey("device_index", DeviceIndex)
