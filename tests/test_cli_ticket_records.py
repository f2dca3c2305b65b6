"""`elvwatch tickets resolve-due | feedback | complete`: the agreed repair deadline, the
return visit and the preventive checklist, recorded from the command line."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from elvwatch.cli.main import main
from elvwatch.cli.tickets import parse_item
from elvwatch.config.loading import load_config
from elvwatch.config.terms import site_terms
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import ArchiveEntry, Store
from tests.ticket_fixtures import SITE, T0, fault

HOUR = 3600.0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    path.write_text(yaml.safe_dump({
        "storage": {"url": url},
        "sites": [{"id": SITE, "name": "湖畔花园",
                   "contract": {"start": "2026-01-01", "preventive": "monthly"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        terms = site_terms(load_config(path))
        async with await Store.open(url) as store:
            await store.sync_archive([ArchiveEntry("cam-01", SITE, "camera", "cctv",
                                                   "127.0.0.1")],
                                     datetime.fromtimestamp(T0, UTC))
            manager = TicketManager(store, lambda: terms)
            await manager.handle([fault("cam-01", FaultState.FIRING, T0, severity="major")])
            await manager.tick(T0)  # the month's preventive work order

    asyncio.run(seed())
    return path


def tickets(config: Path, capsys: pytest.CaptureFixture[str], kind: str) -> list[dict[str, object]]:
    assert main(["tickets", "list", "-c", str(config), "--kind", kind, "--json"]) == 0
    listed: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return listed


def test_agreed_repair_deadline_is_set_in_hours_from_opening_or_at_a_time(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    (ticket,) = tickets(config, capsys, "fault")
    number = str(ticket["number"])
    assert ticket["resolve_to_agree"] is True  # major: to agree with the site
    assert main(["tickets", "resolve-due", *c, number, "--by", "张经理", "--hours", "48",
                 "--note", "需订购硬盘"]) == 0
    assert "repair due" in capsys.readouterr().out
    (ticket,) = tickets(config, capsys, "fault")
    assert ticket["resolve_to_agree"] is False and ticket["resolve_due"] == T0 + 48 * HOUR
    assert main(["tickets", "resolve-due", *c, number, "--by", "张经理",
                 "--at", "2026-03-06T18:00+08:00"]) == 0
    capsys.readouterr()
    (ticket,) = tickets(config, capsys, "fault")
    assert ticket["resolve_due"] == datetime(2026, 3, 6, 10, 0, tzinfo=UTC).timestamp()
    assert main(["tickets", "resolve-due", *c, number, "--by", "x", "--at",
                 "2026-03-06T18:00"]) == 2
    assert "needs an ISO time with zone" in capsys.readouterr().err
    assert main(["tickets", "resolve-due", *c, number, "--by", "x", "--hours", "-1"]) == 2
    capsys.readouterr()


def test_feedback_follows_the_service_and_is_rated_one_to_five(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    (ticket,) = tickets(config, capsys, "fault")
    number = str(ticket["number"])
    assert main(["tickets", "feedback", *c, number, "--by", "客服小王", "--rating", "4"]) == 1
    assert "feedback follows the service" in capsys.readouterr().err
    assert main(["tickets", "resolve", *c, number, "--by", "王工", "--engineer", "王工",
                 "--work", "更换硬盘"]) == 0
    assert main(["tickets", "feedback", *c, number, "--by", "客服小王", "--rating", "9"]) == 1
    assert "rating must be 1 to 5" in capsys.readouterr().err
    assert main(["tickets", "feedback", *c, number, "--by", "客服小王", "--rating", "5",
                 "--comment", "响应及时"]) == 0
    assert f"{number}: feedback" in capsys.readouterr().out
    assert main(["tickets", "show", *c, number, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert [(f["rating"], f["comment"]) for f in detail["feedback"]] == [(5, "响应及时")]


def test_preventive_work_order_is_completed_with_every_checklist_item(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    (order,) = tickets(config, capsys, "preventive")
    number = str(order["number"])
    items = list(order["checklist"])  # type: ignore[call-overload]
    assert "clean_lens" in items
    # A missing item is refused and named; nothing is recorded.
    assert main(["tickets", "complete", *c, number, "--by", "王工", "--engineer", "王工",
                 "--item", "clean_lens=ok"]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["tickets", "complete", *c, number, "--by", "王工", "--engineer", "王工",
                 "--item", "clean_lens=maybe"]) == 2
    assert "KEY=ok or KEY=fail" in capsys.readouterr().err
    args = [f"--item={item}=ok" for item in items if item != "check_recording"]
    args.append("--item=check_recording=fail:3号硬盘坏道")
    assert main(["tickets", "complete", *c, number, "--by", "王工", "--engineer", "王工",
                 *args]) == 0
    assert f"{number}: resolved" in capsys.readouterr().out
    assert main(["tickets", "show", *c, number, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    results = {r["item"]: (r["ok"], r["note"]) for r in detail["checklist_results"]}
    assert results["check_recording"] == (False, "3号硬盘坏道")
    assert results["clean_lens"] == (True, "")
    assert detail["ticket"]["state"] == "resolved"
    # The failed item opened a follow-up fault ticket linked to the order.
    follow_up, fault_ticket = tickets(config, capsys, "fault")   # newest first
    assert follow_up["follow_up_of"] == number and follow_up["channel"] == "schedule"
    assert [r["follow_up"] for r in detail["checklist_results"]
            if r["item"] == "check_recording"] == [follow_up["number"]]
    # A fault ticket is not a work order.
    assert main(["tickets", "complete", *c, str(fault_ticket["number"]), "--by", "王工",
                 "--engineer", "王工", "--item", "clean_lens=ok"]) == 1
    assert "is not a preventive work order" in capsys.readouterr().err


def test_checklist_item_syntax() -> None:
    assert parse_item("walk_test=ok") == ("walk_test", (True, ""))
    assert parse_item("walk_test=FAIL:zone 3: no trigger") == (
        "walk_test", (False, "zone 3: no trigger"))
    for bad in ("walk_test", "=ok", "walk_test=good"):
        with pytest.raises(ValueError, match="KEY=ok or KEY=fail"):
            parse_item(bad)
