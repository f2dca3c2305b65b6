"""`elvwatch tickets …` and `elvwatch silence …` against the store a config names."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from elvwatch.cli.main import main
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import ArchiveEntry, Store
from tests.ticket_fixtures import SITE, T0, fault


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"},
        "sites": [{"id": SITE, "name": "湖畔花园",
                   "contract": {"start": "2026-01-01", "preventive": "monthly"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}") as store:
            await store.sync_archive([ArchiveEntry("cam-01", SITE, "camera", "cctv",
                                                   "127.0.0.1")],
                                     datetime.fromtimestamp(T0, UTC))
            await TicketManager(store, dict).handle([fault("cam-01", FaultState.FIRING, T0)])

    asyncio.run(seed())
    return path


def test_engineer_works_a_ticket_from_the_command_line(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    assert main(["tickets", "list", *c, "--json"]) == 0
    (ticket,) = json.loads(capsys.readouterr().out)
    number = ticket["number"]
    assert main(["tickets", "ack", *c, number, "--by", "李四"]) == 0
    assert f"{number}: acknowledged" in capsys.readouterr().out
    assert main(["tickets", "sign-off", *c, number, "--by", "李四", "--name", "张经理"]) == 1
    assert "cannot sign off ticket" in capsys.readouterr().err
    assert main(["tickets", "resolve", *c, number, "--by", "王工", "--engineer", "王工",
                 "--work", "重新接线", "--part", "cam-01:RJ45"]) == 0
    assert main(["tickets", "sign-off", *c, number, "--by", "王工", "--name", "张经理",
                 "--receipt", "HZ-0042"]) == 1
    assert "still failing" in capsys.readouterr().err
    assert main(["tickets", "show", *c, number]) == 0
    out = capsys.readouterr().out
    assert "acknowledged" in out and "重新接线" in out
    assert main(["tickets", "list", *c]) == 0
    assert number in capsys.readouterr().out


def test_silence_add_list_expire(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    assert main(["silence", "add", *c, "device=cam-01", "--by", "王工", "--why", "换交换机",
                 "--until", "2h"]) == 0
    silence_id = capsys.readouterr().out.split()[1]
    assert main(["silence", "list", *c]) == 0
    assert silence_id in capsys.readouterr().out
    assert main(["silence", "expire", *c, silence_id]) == 0
    assert f"silence {silence_id} expired" in capsys.readouterr().out
    assert main(["silence", "list", *c]) == 0
    assert silence_id not in capsys.readouterr().out
    assert main(["silence", "expire", *c, "nope"]) == 1
