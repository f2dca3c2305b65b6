"""What the web side sees of the running daemon: a small view, never the daemon itself.

The daemon's App answers to it (cli/run.py hands it to the listener); so does anything
else that holds the same few things, such as a test's stand-in.  Through it the web side
reads the config, device states, the sites' terms, the store and the metrics snapshot,
and asks for the three things it may: a reload, the ticket stage's actions (the ticket
manager, the same the command line uses), and, on a centre, a poller's observations
taken in.  Reads are plain attribute reads:
they never wait for the checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiohttp import web

from elvwatch.config.resolved import Config
from elvwatch.exporters.metrics import Snapshot
from elvwatch.probes.base import Observation
from elvwatch.probes.sharing import Shared
from elvwatch.rules.silence import Silencer
from elvwatch.rules.state import ChangeLog, DeviceStatus
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.poller_marks import Taken
from elvwatch.tickets.sla import SiteTerms
from elvwatch.tickets.store import Store


class DaemonView(Protocol):
    @property
    def config(self) -> Config:
        """The config running now (replaced whole by a reload)."""

    @property
    def statuses(self) -> Mapping[str, DeviceStatus]:
        """Each device's state as the checks last saw it."""

    @property
    def changes(self) -> ChangeLog:
        """Which devices' states changed since a reader last looked (web/device_index.py)."""

    @property
    def terms(self) -> Mapping[str, SiteTerms]:
        """Each site's contract terms, as the ticket stage applies them."""

    @property
    def ticket_changes(self) -> int:
        """Grows with every ticket change: this daemon's as it commits, another
        process's (``elvwatch tickets …``) once the ticket stage has read it."""

    @property
    def store(self) -> Store | None:
        """The store, once open."""

    @property
    def tickets(self) -> TicketManager | None:
        """The ticket stage's actions, once the store is open."""

    @property
    def shared(self) -> Shared:
        """What the daemon's probes share: an ad-hoc /probe shares it too."""

    @property
    def silencer(self) -> Silencer:
        """The silences the rule engine applies."""

    @property
    def job_count(self) -> int:
        """Checks scheduled."""

    @property
    def store_pending(self) -> int:
        """Transitions and faults waiting to be written."""

    @property
    def reload_ok(self) -> bool:
        """Whether the last (re)load succeeded."""

    @property
    def reload_errors(self) -> Sequence[str]:
        """Why the last reload failed (empty after a success)."""

    def snapshot(self) -> Snapshot:
        """What /metrics renders, taken at once."""

    async def reload(self) -> bool:
        """Load the config file again; False (the old config kept) when it cannot."""

    async def ingest(self, poller: str, batch: Sequence[tuple[int, Observation]]) -> Taken:
        """A poller's numbered observations into the pipeline (role centre); StoreError
        when they cannot be recorded."""


# The running daemon, under one key per part of the web app that needs it: the pages
# and reports are mounted only on the daemon's own listener, and the access check asks
# whether they are.
VIEW = web.AppKey[DaemonView]("elvwatch")
PAGES_VIEW = web.AppKey[DaemonView]("elvwatch_pages")
REPORTS_VIEW = web.AppKey[DaemonView]("elvwatch_reports")
