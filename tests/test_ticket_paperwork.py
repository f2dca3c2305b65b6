"""What a repair leaves on paper: a replaced device written into the equipment archive
(设备档案) with archive change events naming the ticket, and manufacturer warranty
claims (RMA) tracked on the ticket — through the ticket stage, the CLI and the API."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from elvwatch.cli.main import main
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.records import PartReplaced, Replacement, RmaClaim, ServiceRecord
from elvwatch.tickets.store import ArchiveEventRow, Store
from tests.ticket_fixtures import API_AUTH, SITE, T0, TERMS, Clock, archive, fault, ticket_api

FIRING = FaultState.FIRING
NEW_UNIT = Replacement(serial="K99887766", model="DS-2CD2T47G2", vendor="Hikvision",
                       warranty_until=date(2029, 3, 1))


@pytest.fixture
def manager(store: Store) -> TicketManager:
    return TicketManager(store, lambda: {SITE: replace(TERMS, contract_start=None)}, Clock())


async def archive_events(store: Store) -> list[tuple[str, str, str | None, str | None,
                                                     str | None]]:
    async with store.transaction("read archive events") as session:
        rows = await session.scalars(select(ArchiveEventRow).order_by(ArchiveEventRow.id))
        return [(r.device_id, r.field, r.old, r.new, r.ticket) for r in rows]


async def test_replacing_a_camera_updates_the_archive_with_change_events_naming_the_ticket(
        manager: TicketManager, store: Store) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    events = await manager.resolve(number, "王工", ServiceRecord(
        "王工", "更换摄像机", (PartReplaced("摄像机"),), (NEW_UNIT,)))
    assert [e.kind.value for e in events] == ["resolved", "device_replaced"]
    assert events[1].note == (
        "cam-01 replaced by 王工: serial - → K99887766; model - → DS-2CD2T47G2; "
        "vendor - → Hikvision; installed - → 2026-03-02; "
        "warranty_until 2027-01-01 → 2029-03-01")
    (camera,) = [e for e in await store.archive() if e.id == "cam-01"]
    assert (camera.serial, camera.model, camera.vendor, camera.installed,
            camera.warranty_until) == ("K99887766", "DS-2CD2T47G2", "Hikvision",
                                       date(2026, 3, 2), date(2029, 3, 1))
    assert await archive_events(store) == [
        ("cam-01", "serial", None, "K99887766", number),
        ("cam-01", "model", None, "DS-2CD2T47G2", number),
        ("cam-01", "vendor", None, "Hikvision", number),
        ("cam-01", "installed", None, "2026-03-02", number),
        ("cam-01", "warranty_until", "2027-01-01", "2029-03-01", number)]
    detail = await manager.get(number)
    assert [(c["field"], c["new"]) for c in detail.archive_changes] == [
        ("serial", "K99887766"), ("model", "DS-2CD2T47G2"), ("vendor", "Hikvision"),
        ("installed", "2026-03-02"), ("warranty_until", "2029-03-01")]
    # The part went into the old unit, still under its warranty when it failed.
    assert detail.service_records[0]["parts"][0]["coverage"] == "warranty"

    # The new unit reports the serial the engineer wrote down: nothing changes; a
    # restart with the config unchanged keeps the replacement ...
    assert await store.update_device_facts("cam-01", {"serial": "K99887766"},
                                           datetime.fromtimestamp(T0, UTC)) == []
    await store.sync_archive(archive(), datetime.fromtimestamp(T0 + 60, UTC))
    (camera,) = [e for e in await store.archive() if e.id == "cam-01"]
    assert camera.warranty_until == date(2029, 3, 1) and camera.serial == "K99887766"
    # ... and an operator who edits the config's warranty wins.
    edited = [replace(e, warranty_until=date(2030, 1, 1)) if e.id == "cam-01" else e
              for e in archive()]
    await store.sync_archive(edited, datetime.fromtimestamp(T0 + 120, UTC))
    (camera,) = [e for e in await store.archive() if e.id == "cam-01"]
    assert camera.warranty_until == date(2030, 1, 1)


@pytest.mark.parametrize(("replacement", "message"), [
    (Replacement(device="cam-99", serial="X"), "device 'cam-99' is not in the equipment "
                                               "archive"),
    (Replacement(serial=" "), "the new unit's serial is required"),
    (replace(NEW_UNIT, installed=date(2026, 3, 2), warranty_until=date(2025, 1, 1)),
     "the warranty of the new cam-01 ends before it was installed"),
])
async def test_bad_replacement_is_refused_and_resolves_nothing(
        manager: TicketManager, store: Store, replacement: Replacement, message: str) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    with pytest.raises(ValueError, match=message):
        await manager.resolve(number, "王工", ServiceRecord("王工", "换机", (), (replacement,)))
    detail = await manager.get(number)
    assert detail.ticket.state == "open" and detail.service_records == ()
    assert await archive_events(store) == []


async def test_warranty_claim_is_tracked_from_sending_to_return(
        manager: TicketManager) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    (sent,) = await manager.record_rma(number, "王工", RmaClaim(
        "RMA-2026-0315", part="摄像机主板", vendor="Hikvision",
        vendor_contact="海康华东服务站 0571-8888 0000", sent_on=date(2026, 3, 3)))
    assert sent.kind.value == "rma"
    assert sent.note == ("claim RMA-2026-0315 for 摄像机主板 with 海康华东服务站 0571-8888 0000; "
                         "sent 2026-03-03")
    (back,) = await manager.record_rma(number, "王工", RmaClaim(
        "RMA-2026-0315", returned_on=date(2026, 3, 17), note="返修件已到"))
    assert back.note == "claim RMA-2026-0315 updated; sent 2026-03-03; returned 2026-03-17"
    (claim,) = (await manager.get(number)).rma_claims
    assert (claim["part"], claim["device"], claim["vendor_contact"], claim["sent_on"],
            claim["returned_on"], claim["note"]) == (
        "摄像机主板", "cam-01", "海康华东服务站 0571-8888 0000", "2026-03-03", "2026-03-17",
        "返修件已到")
    for bad, message in (
            (RmaClaim("RMA-2", vendor_contact="x"), "the claimed part is required"),
            (RmaClaim("RMA-2", part="x"), "the vendor's contact is required"),
            (RmaClaim("RMA-2026-0315", returned_on=date(2026, 3, 1)),
             "claim RMA-2026-0315: returned before it was sent")):
        with pytest.raises(ValueError, match=message):
            await manager.record_rma(number, "王工", bad)
    assert len((await manager.get(number)).rma_claims) == 1


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": url},
        "sites": [{"id": SITE, "name": "湖畔花园"}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1",
                     "warranty_until": "2027-01-01"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        async with await Store.open(url) as store:
            await store.sync_archive(archive()[1:2], datetime.fromtimestamp(T0, UTC))
            await TicketManager(store, dict).handle([fault("cam-01", FIRING, T0)])

    asyncio.run(seed())
    return path


def test_engineer_records_a_replacement_and_a_claim_from_the_command_line(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    number = "T-2026-000001"
    assert main(["tickets", "resolve", *c, number, "--by", "王工", "--engineer", "王工",
                 "--work", "整机更换", "--new-model", "DS-2CD2T47G2"]) == 2
    assert "needs --new-serial" in capsys.readouterr().err
    assert main(["tickets", "resolve", *c, number, "--by", "王工", "--engineer", "王工",
                 "--work", "整机更换", "--new-serial", "K1", "--warranty-until",
                 "2029-13-01"]) == 2
    assert "--warranty-until needs a date" in capsys.readouterr().err
    assert main(["tickets", "resolve", *c, number, "--by", "王工", "--engineer", "王工",
                 "--work", "整机更换", "--new-serial", "K99887766", "--installed",
                 "2026-03-05", "--warranty-until", "2029-03-04"]) == 0
    assert f"{number}: device_replaced" in capsys.readouterr().out
    assert main(["tickets", "rma", *c, number, "--by", "王工", "--claim", "RMA-7",
                 "--part", "摄像机", "--vendor-contact", "厂家客服 400-000-0000",
                 "--sent", "2026-03-06"]) == 0
    assert "claim RMA-7 for 摄像机" in capsys.readouterr().out
    assert main(["tickets", "show", *c, number, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert {(c["field"], c["new"]) for c in detail["archive_changes"]} >= {
        ("serial", "K99887766"), ("installed", "2026-03-05"),
        ("warranty_until", "2029-03-04")}
    assert detail["rma_claims"][0]["claim_number"] == "RMA-7"
    assert main(["tickets", "show", *c, number]) == 0
    assert "warranty claim RMA-7: 摄像机 with 厂家客服 400-000-0000, sent 2026-03-06" in \
        capsys.readouterr().out


async def test_api_records_a_replacement_and_a_claim(manager: TicketManager,
                                                     tmp_path: Path) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    async with ticket_api(manager, tmp_path) as client:
        url = f"/api/v1/tickets/{number}"
        resolved = await client.post(f"{url}/resolve", headers=API_AUTH, json={
            "actor": "王工", "engineer": "王工", "work_done": "整机更换",
            "replacements": [{"serial": "K5", "warranty_until": "2029-01-01"}]})
        assert resolved.status == 200
        kinds = [e["kind"] for e in (await resolved.json())["events"]]
        assert kinds == ["resolved", "device_replaced"]
        incomplete = await client.post(f"{url}/rma", headers=API_AUTH,
                                       json={"actor": "王工", "claim_number": "RMA-9"})
        assert incomplete.status == 422
        assert (await incomplete.json())["error"] == "the claimed part is required"
        claimed = await client.post(f"{url}/rma", headers=API_AUTH, json={
            "actor": "王工", "claim_number": "RMA-9", "part": "主板",
            "vendor_contact": "厂家", "sent_on": "2026-03-03"})
        assert claimed.status == 200
        shown = await (await client.get(url)).json()
    assert shown["rma_claims"][0]["sent_on"] == "2026-03-03"
    assert ("serial", None, "K5") in [(c["field"], c["old"], c["new"])
                                      for c in shown["archive_changes"]]
