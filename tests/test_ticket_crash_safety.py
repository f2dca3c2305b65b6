"""SIGKILL the ticket loop at random moments while faults come and go: after restarts the
tickets, their deadlines and their breaches are exactly those of a run never killed."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from tests import chaos_daemon

STEPS = 80
KILLS = 4
DEADLINE = 60.0  # seconds for the whole killed run
ROOT = Path(__file__).resolve().parent.parent


async def outcome(url: str) -> list[tuple[object, ...]]:
    """What must survive: each ticket, its deadlines and counts of what happened to it.
    (Verification times may differ by a poll: a healthy poll repeated after a kill is
    counted twice, which only makes a verification one poll earlier.)"""
    async with await Store.open(url) as store:
        manager = TicketManager(store, dict, time.time)
        out: list[tuple[object, ...]] = []
        for ticket in sorted(await manager.list_tickets(limit=5000), key=lambda t: t.number):
            detail = await manager.get(ticket.number)
            counts = Counter(e.kind for e in detail.events)
            breaches = tuple((e.kind, e.at) for e in detail.events
                             if e.kind in ("breached", "escalated", "opened", "reopened",
                                           "resolved"))
            out.append((ticket.number, ticket.device, ticket.severity, ticket.state,
                        ticket.opened_at, ticket.response_due, ticket.resolve_due,
                        ticket.resolve_to_agree, ticket.recurrences,
                        ticket.recovered_without_intervention, ticket.affected,
                        sorted(counts.items()), breaches))
        return out


@pytest.mark.slow
async def test_sigkill_at_random_points_loses_and_duplicates_no_ticket(
        store_url: str, tmp_path: Path) -> None:
    reference = f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}"
    await chaos_daemon.run(reference, tmp_path / "reference.progress", STEPS, 0.0)
    expected = await outcome(reference)
    assert len(expected) >= 8 and any(t[8] for t in expected)  # recurrences happen
    assert any(("breached" in dict(t[11])) for t in expected)

    progress = tmp_path / "killed.progress"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1234)
    started = time.monotonic()
    kills_mid_run = 0
    while True:
        assert time.monotonic() - started < DEADLINE, "killed run did not finish in time"
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.chaos_daemon", store_url, str(progress), str(STEPS),
            "0.004", cwd=ROOT, env=env)
        if kills_mid_run >= KILLS:
            assert await asyncio.wait_for(child.wait(), DEADLINE) == 0
            break
        seen = int(progress.read_text()) if progress.exists() else 0
        while child.returncode is None and (
                not progress.exists() or int(progress.read_text() or 0) <= seen):
            await asyncio.sleep(0.01)  # until this run has made progress
        await asyncio.sleep(rng.uniform(0.0, 0.15))
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
            kills_mid_run += 1
        code = await child.wait()
        if code == 0:
            break
        assert code == -signal.SIGKILL
    assert kills_mid_run >= 3, "the loop finished before it could be killed: test proves nothing"
    assert int(progress.read_text()) == STEPS
    assert await outcome(store_url) == expected


def test_fault_schedule_has_many_changes_and_a_root_cause() -> None:
    steps = [chaos_daemon.firing(s, STEPS) for s in range(STEPS)]
    assert any("sw-01" in f and "cam-06" in f for f in steps)
    assert sum(1 for a, b in itertools.pairwise(steps) if a != b) > 30
