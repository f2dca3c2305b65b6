"""Tickets from people — a phone call, a WeChat message, a walk-in request — through the
ticket stage, `elvwatch tickets create` and `POST /api/v1/tickets`: the contract's
deadlines from when the request came in, and the same life and SLA as any ticket."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from elvwatch.cli.main import main
from elvwatch.exporters.reports.periods import whole_range
from elvwatch.exporters.reports.sla import sla_report
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.records import Actor, NewTicket, ServiceRecord, SignOff
from elvwatch.tickets.store import Store
from tests.ticket_fixtures import API_AUTH, HOUR, SITE, T0, TERMS, Clock, archive, ticket_api

DAY = 24 * HOUR
CALL = NewTicket(site=SITE, description="东门摄像机画面发黑\n业主反映晚上看不清",
                 reporter="张女士", channel="phone", device="cam-01",
                 reporter_contact="138 0000 1111")


@pytest.fixture
def manager(store: Store, clock: Clock) -> TicketManager:
    terms = replace(TERMS, contract_start=None, escalation=("张经理",))
    return TicketManager(store, lambda: {SITE: terms}, clock, close_after=3 * DAY)


async def test_phone_call_about_a_device_gets_the_contracts_deadlines_from_the_call(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    clock.now = T0 + 20 * 60   # written down twenty minutes after the call
    (opened,) = await manager.create(replace(CALL, reported_at=T0), Actor("值班员小刘", "cli"))
    assert opened.ticket == "T-2026-000001" and opened.at == T0 + 20 * 60
    assert (opened.response_due, opened.resolve_due) == (T0 + 12 * HOUR, T0 + 12 * HOUR)
    assert opened.note == ("phone from 张女士 (138 0000 1111) at 2026-03-02T08:00+00:00: "
                           "东门摄像机画面发黑\n业主反映晚上看不清")
    detail = await manager.get(opened.ticket)
    t = detail.ticket
    assert (t.kind, t.channel, t.reporter, t.reporter_contact) == (
        "fault", "phone", "张女士", "138 0000 1111")
    assert (t.device, t.location, t.system) == ("cam-01", "1栋 / 1F", "cctv")
    assert t.title_zh == "cam-01 东门摄像机画面发黑" and t.opened_at == T0
    assert t.needs_verification and not t.fault_active
    assert [(e.actor, e.via) for e in detail.events] == [("值班员小刘", "cli")]

    # The same life: the engineer's record, then the probes confirm the device.
    clock.now = T0 + HOUR
    await manager.acknowledge(opened.ticket, "王工")
    clock.now = T0 + 3 * HOUR
    await manager.resolve(opened.ticket, "王工", ServiceRecord("王工", "清洁镜头，调整补光"))
    verified = await manager.device_healthy("cam-01", polls=3)
    assert [e.kind.value for e in verified] == ["verified"]

    march = whole_range(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Asia/Shanghai"))
    report = await sla_report(store, SITE, march, as_of=T0 + 4 * HOUR)
    (times,) = report.tickets
    assert (times.channel, times.response_s, times.repair_s) == ("phone", HOUR, 3 * HOUR)
    assert report.breaches == ()


async def test_walk_in_request_about_a_place_closes_on_sign_off_or_days_later(
        manager: TicketManager, clock: Clock) -> None:
    request = NewTicket(site=SITE, description="3号楼单元门禁读卡器松动", reporter="李先生",
                        channel="walk_in", location="3栋 / 1F / 单元门", system="access_control")
    (first,) = await manager.create(request, "物业前台")
    (second,) = await manager.create(replace(request, channel="wechat"), "物业前台")
    ticket = (await manager.get(first.ticket)).ticket
    assert (ticket.device, ticket.location, ticket.needs_verification) == (
        None, "3栋 / 1F / 单元门", False)
    for number in (first.ticket, second.ticket):
        await manager.resolve(number, "王工", ServiceRecord("王工", "紧固读卡器"))
    # Nothing watches a place: the client's acceptance closes it ...
    assert [e.kind.value for e in await manager.sign_off(
        first.ticket, "王工", SignOff("李先生", channel="paper"))] == ["signed_off", "closed"]
    # ... or the days without one.
    (closed,) = await manager.tick(T0 + 3 * DAY)
    assert (closed.ticket, closed.note) == (second.ticket,
                                           "auto-closed: no sign-off within 3 days")


async def test_emergency_reported_by_phone_is_escalated_at_once(
        manager: TicketManager) -> None:
    events = await manager.create(replace(CALL, severity="emergency",
                                          description="监控中心断电"), "值班员")
    assert [e.kind.value for e in events] == ["opened", "escalated"]
    assert events[1].note == "emergency, at once: escalated to 张经理"
    assert events[0].response_due == T0 + 0.5 * HOUR


@pytest.mark.parametrize(("change", "message"), [
    ({"site": "nowhere"}, "unknown site 'nowhere' (sites: lakeside)"),
    ({"device": "cam-99"}, "device 'cam-99' is not in the equipment archive"),
    ({"device": None}, "a request needs the device or the location it is about"),
    ({"channel": "fax"}, "channel must be one of phone, wechat, walk_in, email, other, "
                         "not 'fax'"),
    ({"severity": "critical"}, "severity must be one of general, major, emergency"),
    ({"description": "  "}, "description is required"),
    ({"reporter": ""}, "reporter is required"),
    ({"system": "hvac"}, "system must be one of cctv, access_control, intercom, alarm, "
                         "network, power"),
    ({"reported_at": T0 + 3600}, "reported_at is in the future"),
    ({"reported_at": T0 - 8 * DAY}, "reported_at is more than 7 days ago"),
])
async def test_bad_request_is_refused_with_a_reason_and_opens_nothing(
        manager: TicketManager, change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        await manager.create(replace(CALL, **change), "值班员")  # type: ignore[arg-type]
    assert str(refused.value).startswith(message)
    assert await manager.list_tickets() == []


async def test_device_of_another_site_is_refused(store: Store, clock: Clock) -> None:
    other = replace(TERMS, site="harbour", name="海港城")
    manager = TicketManager(store, lambda: {SITE: TERMS, "harbour": other}, clock)
    with pytest.raises(ValueError, match="device 'cam-01' is at site lakeside, not harbour"):
        await manager.create(replace(CALL, site="harbour"), "值班员")


# -- the command line and the API ----------------------------------------------------------

@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": url},
        "sites": [{"id": SITE, "name": "湖畔花园",
                   "contract": {"start": "2026-01-01", "preventive": "monthly"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1",
                     "location": {"building": "1栋", "place": "东门"}}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        async with await Store.open(url) as s:
            await s.sync_archive(archive()[1:2], datetime.fromtimestamp(T0, UTC))

    asyncio.run(seed())
    return path


def test_engineer_opens_a_ticket_for_a_wechat_message_from_the_command_line(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    # The message came in twenty minutes ago (the CLI's clock is the real one).
    came = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0) - timedelta(
        minutes=20)
    assert main(["tickets", "create", *c, "--site", SITE, "--device", "cam-01",
                 "--description", "门口摄像头歪了", "--reporter", "王阿姨",
                 "--channel", "wechat", "--at", came.isoformat(), "--by", "值班员"]) == 0
    out = capsys.readouterr().out
    number = f"T-{came.astimezone(UTC).year}-000001"
    assert out.startswith(f"{number}: opened; respond by ")
    assert main(["tickets", "show", *c, number, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["ticket"]["channel"] == "wechat" and detail["ticket"]["reporter"] == "王阿姨"
    assert detail["ticket"]["opened_at"] == came.timestamp()
    assert detail["ticket"]["response_due"] == came.timestamp() + 12 * HOUR
    assert detail["events"][0]["via"] == "cli"
    assert main(["tickets", "show", *c, number]) == 0
    assert "reported by 王阿姨 via wechat" in capsys.readouterr().out

    assert main(["tickets", "create", *c, "--site", SITE, "--description", "x",
                 "--reporter", "y", "--channel", "phone", "--by", "z"]) == 2
    assert "give --device or --location" in capsys.readouterr().err
    assert main(["tickets", "create", *c, "--site", SITE, "--location", "大门",
                 "--description", "x", "--reporter", "y", "--channel", "phone",
                 "--at", "2026-03-02 16:00", "--by", "z"]) == 2
    assert "--at needs an ISO time with zone" in capsys.readouterr().err
    assert main(["tickets", "create", *c, "--site", "nowhere", "--location", "大门",
                 "--description", "x", "--reporter", "y", "--channel", "phone",
                 "--by", "z"]) == 1
    assert "unknown site 'nowhere'" in capsys.readouterr().err


async def test_api_opens_a_ticket_with_the_token_and_refuses_bad_requests(
        store: Store, clock: Clock, tmp_path: Path) -> None:
    manager = TicketManager(store, lambda: {SITE: TERMS}, clock)
    async with ticket_api(manager, tmp_path) as client:
        await _api_opens(client, manager)


async def _api_opens(client: TestClient[web.Request, web.Application],
                     manager: TicketManager) -> None:
    auth = API_AUTH
    body = {"actor": "客服小周", "site": SITE, "location": "2栋 / 地下车库",
            "description": "车库道闸对讲无声", "reporter": "保安老陈", "channel": "walk_in",
            "system": "intercom", "severity": "major",
            "reported_at": "2026-03-02T15:30:00+08:00"}
    assert (await client.post("/api/v1/tickets", json=body)).status == 401
    created = await client.post("/api/v1/tickets", json=body, headers=auth)
    assert created.status == 201
    answer = await created.json()
    ticket = answer["ticket"]
    assert (ticket["channel"], ticket["severity"], ticket["resolve_to_agree"]) == (
        "walk_in", "major", True)
    assert ticket["opened_at"] == T0 - 30 * 60
    assert answer["events"][0]["actor"] == "客服小周"
    assert (await manager.get(ticket["number"])).events[0].via == "api"

    bad = await client.post("/api/v1/tickets", json=body | {"channel": "fax"}, headers=auth)
    assert bad.status == 422 and "channel" in (await bad.json())["error"]
    naive = await client.post("/api/v1/tickets", headers=auth,
                              json=body | {"reported_at": "2026-03-02T15:30:00"})
    assert naive.status == 422
    unknown = await client.post("/api/v1/tickets", headers=auth,
                                json=body | {"device": "cam-99"})
    assert unknown.status == 422
    assert (await unknown.json())["error"] == "device 'cam-99' is not in the equipment archive"
    assert len(await manager.list_tickets()) == 1
