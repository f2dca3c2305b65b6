"""Shared helpers of the ticket tests: a settable clock, fault transitions, a manager,
and the ticket API over a real loopback socket behind the token check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from elvwatch.config.schema import HttpConfig
from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.sla import SiteTerms
from elvwatch.tickets.store import ArchiveEntry
from elvwatch.web.server import access
from elvwatch.web.tickets import add_ticket_routes
from elvwatch.web.view import VIEW

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
SITE = "lakeside"
TERMS = SiteTerms(site=SITE, name="湖畔花园", systems=("cctv", "network", "alarm"),
                  contract_start=date(2026, 1, 1), preventive="monthly",
                  preventive_by_system={"alarm": "quarterly"})


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def archive() -> list[ArchiveEntry]:
    entries = [ArchiveEntry("sw-01", SITE, "poe_switch", "network", "sw-01.lan",
                            location="1栋 / B1 / 弱电间", warranty_until=date(2025, 6, 30))]
    entries += [ArchiveEntry(f"cam-{i:02d}", SITE, "ipc", "cctv", f"cam-{i:02d}.lan",
                             location=f"1栋 / {i}F", warranty_until=date(2027, 1, 1),
                             depends_on=("sw-01",)) for i in range(1, 13)]
    return entries


def fault(device: str, state: FaultState, at: float, *, rule: str = "device_unreachable",
          severity: str = "general", previous: FaultState | None = None,
          root_cause: str | None = None, suppressed_by: str | None = None,
          affected: tuple[str, ...] = (), system: str = "cctv") -> FaultTransition:
    if previous is None:
        previous = FaultState.PENDING if state is FaultState.FIRING else FaultState.FIRING
    return FaultTransition(
        fingerprint=fingerprint(SITE, device, rule), rule=rule, device=device, site=SITE,
        system=system, kind="ipc", name_zh="设备离线", name_en="device unreachable",
        severity=severity, previous=previous, state=state, at=at, summary="icmp: timeout",
        root_cause=root_cause, affected=affected, suppressed_by=suppressed_by)


API_TOKEN = "ticket-api-token"
API_AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@asynccontextmanager
async def ticket_api(manager: TicketManager, directory: Path
                     ) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The ticket API of ``manager``; writes need ``API_AUTH``."""
    token_file = directory / "token"
    token_file.write_text(API_TOKEN + "\n")
    web_app = web.Application(middlewares=[access])
    # The token middleware reads only this from the daemon's App.
    web_app[VIEW] = SimpleNamespace(  # type: ignore[assignment]
        config=SimpleNamespace(model=SimpleNamespace(http=HttpConfig(
            token_file=token_file, loopback_reads=True))))
    add_ticket_routes(web_app, lambda: manager)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
        yield client
