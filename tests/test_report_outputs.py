"""``elvwatch report … --json`` and progress of long operations, against the constructed
histories of tests/test_reports.py: the documented JSON shapes carry the same figures
as the computed reports, and progress callbacks are driven to their totals."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest
import yaml

from elvwatch.cli.main import main
from elvwatch.config.inventory import import_devices
from elvwatch.exporters.reports.availability import availability_report
from elvwatch.exporters.reports.periods import months, whole_range
from elvwatch.exporters.reports.service import service_report
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.actions import SignOff
from elvwatch.tickets.store import Store
from tests.test_reports import (  # noqa: F401  (config, sqlite_store: fixtures)
    DAY,
    SH,
    SITE,
    config,
    seed_history,
    seed_tickets,
    sqlite_store,
)
from tests.ticket_fixtures import HOUR, T0, fault


def report_json(capsys: pytest.CaptureFixture[str], path: Path, kind: str, first: str,
                last: str) -> dict[str, Any]:
    assert main(["report", kind, "-c", str(path), "--site", SITE, "--from", first,
                 "--to", last, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""                       # nothing but the document, anywhere
    document: dict[str, Any] = json.loads(out)
    return document


def test_availability_json_has_the_documented_shape_and_exact_figures(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    doc = report_json(capsys, config, "availability", "2026-01-15", "2026-03-10")
    assert set(doc) == {"report", "site", "period", "generated_at", "months"}
    assert doc["report"] == "availability"
    assert doc["site"] == {"id": SITE, "name": "湖畔花园", "language": "zh-CN",
                           "timezone": "Asia/Shanghai"}
    assert doc["period"] == {"label": "2026-01-15..2026-03-10",
                             "start": "2026-01-15T00:00:00+08:00",
                             "end": "2026-03-11T00:00:00+08:00"}
    assert [m["label"] for m in doc["months"]] == ["2026-01-15..2026-01-31", "2026-02",
                                                   "2026-03-01..2026-03-10"]
    rows = {(m["label"][:7], d["device"]): d for m in doc["months"] for d in m["devices"]}
    jan = rows[("2026-01", "cam-a")]
    assert set(jan) == {"device", "name", "system", "location", "availability_percent",
                        "up_seconds", "degraded_seconds", "down_seconds", "unknown_seconds",
                        "not_in_service_seconds", "down_at_start", "faults", "fault_tickets",
                        "tickets"}
    # The figures test_reports.py derives from the transitions, to the second.
    assert (jan["down_seconds"], jan["up_seconds"], jan["unknown_seconds"]) == (
        3 * HOUR, 17 * DAY - 3 * HOUR, 0)
    assert jan["availability_percent"] == pytest.approx(100 * (17 * DAY - 3 * HOUR)
                                                        / (17 * DAY), abs=1e-12)
    assert (jan["down_at_start"], jan["faults"], jan["fault_tickets"], jan["tickets"]) == (
        True, 2, 1, ["T-2026-000001"])
    feb = rows[("2026-02", "cam-a")]
    assert (feb["down_seconds"], feb["degraded_seconds"]) == (1.5 * HOUR, HOUR)
    mar = rows[("2026-03", "cam-a")]
    assert (mar["unknown_seconds"], mar["availability_percent"]) == (600, 100.0)
    b_jan, b_mar = rows[("2026-01", "cam-b")], rows[("2026-03", "cam-b")]
    assert b_jan["availability_percent"] is None and b_jan["not_in_service_seconds"] == 17 * DAY
    assert (b_mar["up_seconds"], b_mar["not_in_service_seconds"]) == (2 * DAY, 8 * DAY)
    assert jan["location"] == "1栋 / 1F / 北门" and jan["name"] == "北门"


@pytest.fixture
def ticket_config(tmp_path: Path) -> Path:
    """The four March faults of test_reports.seed_tickets, the first one verified with
    the representative's sign-off and a return visit's feedback."""
    db = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": db},
        "sites": [{"id": SITE, "name": "Lakeside Gardens", "language": "en",
                   "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        async with await Store.open(db) as store:
            manager, clock, numbers = await seed_tickets(store)
            await manager.handle([fault("cam-01", FaultState.CLEARED, T0 + 6 * HOUR)])
            clock.now = T0 + 7 * HOUR
            await manager.verify(numbers[0], "张经理", SignOff("张经理", "图像正常"))
            clock.now = T0 + 3 * DAY
            await manager.add_feedback(numbers[0], "客服小刘", 4, "响应及时")

    asyncio.run(seed())
    return path


def test_sla_json_gives_the_times_medians_and_breaches_of_the_constructed_tickets(
        ticket_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, ticket_config, "sla", "2026-03-01", "2026-03-31")
    assert set(doc) == {"report", "site", "period", "generated_at", "as_of", "by_severity",
                        "tickets", "breaches", "preventive"}
    stats = {s["severity"]: s for s in doc["by_severity"]}
    assert list(stats) == ["emergency", "major", "general"]
    general = stats["general"]
    assert (general["tickets"], general["responded"], general["resolved"]) == (2, 2, 2)
    assert (general["response_median_seconds"], general["response_worst_seconds"]) == (
        7.5 * HOUR, 14 * HOUR)
    assert (general["repair_median_seconds"], general["repair_worst_seconds"]) == (
        12 * HOUR, 19 * HOUR)
    assert (general["response_breaches"], general["repair_breaches"]) == (1, 1)
    emergency = stats["emergency"]
    assert (emergency["response_worst_seconds"], emergency["repair_worst_seconds"]) == (
        600, 3 * HOUR)
    numbers = [t["ticket"] for t in doc["tickets"]]
    assert [t["opened_at"] for t in doc["tickets"]] == [
        f"2026-03-02T{16 + i}:00:00+08:00" for i in range(4)]
    late = {(b["ticket"], b["deadline"]): b for b in doc["breaches"]}
    assert set(late) == {(numbers[1], "response"), (numbers[1], "repair"),
                         (numbers[3], "response")}
    response = late[(numbers[1], "response")]
    assert (response["late_seconds"], response["met_at"], response["escalated_at"]) == (
        2 * HOUR, "2026-03-03T07:00:00+08:00", "2026-03-03T06:00:00+08:00")
    assert response["reason"] == "response met 2:00:00 late; escalated at 2026-03-03 06:00"
    assert late[(numbers[1], "repair")]["late_seconds"] == 7 * HOUR
    assert late[(numbers[3], "response")]["met_at"] is None   # still unanswered
    assert doc["tickets"][3]["repair_to_agree"] is True


def test_service_json_holds_visits_receipts_and_feedback(
        ticket_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, ticket_config, "service", "2026-03-01", "2026-03-31")
    assert set(doc) == {"report", "site", "period", "generated_at", "entries", "feedback"}
    first = doc["entries"][0]
    record = {"at": "2026-03-02T21:00:00+08:00", "engineer": "王工", "cause": "",
              "work_done": "更换电源适配器",
              "parts": [{"device": "cam-01", "part": "电源适配器", "quantity": 1,
                         "coverage": "warranty", "consumable": False,
                         "unit_price_cents": None, "charge_cents": 0}]}
    assert first["visits"] == [record]
    # No visit was recorded (resolved from the command line): the record is its own sheet,
    # signed by the sign-off made after it.
    assert first["sheets"] == [{"engineer": "王工", "arrived_at": None, "departed_at": None,
                                "records": [record], "checklist": [],
                                "receipts": first["receipts"], "photos": 0,
                                "charge_cents": 0}]
    assert first["receipts"] == [{"signed_by": "张经理", "at": "2026-03-02T23:00:00+08:00",
                                  "comment": "图像正常", "after_close": False}]
    assert [len(e["receipts"]) for e in doc["entries"]] == [1, 0, 0]
    assert doc["feedback"] == [{"ticket": first["ticket"], "device": "cam-01",
                                "title_zh": "cam-01 设备离线", "title_en": first["title_en"],
                                "at": "2026-03-05T16:00:00+08:00", "rating": 4,
                                "comment": "响应及时", "recorded_by": "客服小刘",
                                "contact": "", "quality_issue": None, "solution": "",
                                "outcome": "", "outcome_at": None}]


def test_handover_json_prints_the_manifest_of_the_written_package(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    bundle = tmp_path / "h.zip"
    assert main(["report", "handover", "-c", str(config), "--site", SITE, "--from",
                 "2026-01-01", "--to", "2026-03-31", "--no-pdf", "-o", str(bundle),
                 "--json"]) == 0
    out, err = capsys.readouterr()
    with zipfile.ZipFile(bundle) as z:
        assert json.loads(out) == json.loads(z.read("manifest.json"))
    assert err == f"wrote {bundle} ({bundle.stat().st_size} bytes)\n"


def test_json_and_format_are_exclusive(config: Path) -> None:  # noqa: F811
    with pytest.raises(SystemExit) as exit_:
        main(["report", "sla", "-c", str(config), "--site", SITE, "--from", "2026-03-01",
              "--to", "2026-03-31", "--json", "--format", "csv"])
    assert exit_.value.code == 2


async def test_report_progress_counts_every_device_and_ticket(
        sqlite_store: Store) -> None:  # noqa: F811
    await seed_history(sqlite_store)
    first, last = date(2026, 1, 15), date(2026, 3, 10)
    devices: list[tuple[int, int]] = []
    await availability_report(sqlite_store, SITE, months(first, last, SH),
                              progress=lambda done, total: devices.append((done, total)))
    assert devices == [(1, 2), (2, 2)]          # cam-a, and cam-b while it was there
    tickets: list[tuple[int, int]] = []
    await service_report(sqlite_store, SITE, whole_range(first, last, SH),
                         progress=lambda done, total: tickets.append((done, total)))
    assert tickets == [(1, 2), (2, 2)]


def test_import_of_thousands_of_rows_drives_progress_to_the_total(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["设备编号", "设备名称", "设备类型", "IP地址", "安装位置"])
    writer.writerows([f"cam-{i:04d}", f"摄像机{i}", "摄像机", f"10.1.{i // 250}.{i % 250 + 1}",
                      "3号楼"] for i in range(3000))
    writer.writerow([])                          # a trailing blank row still counts as read
    path.write_text(out.getvalue(), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    result = import_devices(path, site="lab", progress=lambda d, t: seen.append((d, t)))
    assert len(result.devices) == 3000 and not result.errors
    assert seen[0] == (2, 3002) and seen[-1] == (3002, 3002)
    assert [d for d, _ in seen[:-1]] == list(range(2, 3003))   # every row, in order

    book = openpyxl.Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(out.getvalue())):
        sheet.append(row)
    book.save(tmp_path / "big.xlsx")
    seen.clear()
    assert len(import_devices(tmp_path / "big.xlsx", site="lab",
                              progress=lambda d, t: seen.append((d, t))).devices) == 3000
    # openpyxl writes no empty row: 3,001 rows, each reported, then the closing call.
    assert seen[-1] == (3001, 3001) and len(seen) == 3001


def test_import_off_a_terminal_prints_no_progress(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "few.csv"
    path.write_text("设备名称,设备类型,IP地址\n大门摄像机,摄像机,10.0.0.1\n", encoding="utf-8")
    assert main(["devices", "import", str(path), "--site", "lab", "-o",
                 str(tmp_path / "out.yaml")]) == 0
    assert capsys.readouterr().err == f"imported 1 devices from {path}; 0 rows with errors\n"
