"""The ticket life of the maintenance plan on real databases: the engineer's repair waits
for the engineer's service record, the system's verification is not the client's
acceptance, and a ticket closes by sign-off or, days later, by the system with that
reason — never a few polls after the repair."""

from __future__ import annotations

from dataclasses import replace

import pytest

from elvwatch.exporters.notify.messages import render
from elvwatch.exporters.reports.brief import build_brief
from elvwatch.exporters.reports.service import sheets_of
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.core import AWAITING_NOTE
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import IllegalTransition, sign_off_refusal
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.notes import local_note
from elvwatch.tickets.records import Actor, ServiceRecord, SignOff
from elvwatch.tickets.store import Store
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

FIRING, CLEARED = FaultState.FIRING, FaultState.CLEARED
DAY = 24 * HOUR
RECORD = ServiceRecord("王工", "重新压接网线水晶头")


@pytest.fixture
def manager(store: Store, clock: Clock) -> TicketManager:
    terms = replace(TERMS, contract_start=None)
    return TicketManager(store, lambda: {SITE: terms}, clock, verify_after_polls=3)


def kinds(events: list[TicketEvent]) -> list[str]:
    return [e.kind.value for e in events]


async def test_acknowledged_ticket_whose_device_recovers_waits_for_the_engineers_record(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    await manager.acknowledge(number, "李四", "派王工到场")
    recovered = await manager.handle([fault("cam-01", CLEARED, T0 + 2 * HOUR)])
    assert kinds(recovered) == ["resolved"] and recovered[0].note == AWAITING_NOTE
    ticket = (await manager.get(number)).ticket
    assert (ticket.state, ticket.awaiting_record) == ("resolved", True)
    assert not ticket.recovered_without_intervention  # the engineer was on it
    assert ticket.sign_off_refusal == "awaiting_record"

    # Healthy polls count, but neither the system nor the client closes the record's gap.
    assert await manager.device_healthy("cam-01", polls=5) == []
    for call in (lambda: manager.verify(number, "李四"),
                 lambda: manager.sign_off(number, "李四", SignOff("张经理"))):
        with pytest.raises(IllegalTransition, match="service record is not written yet"):
            await call()

    clock.now = T0 + 3 * HOUR
    done = await manager.resolve(number, Actor("王工", "cli"), RECORD)
    # Accepted in that state; the device has been healthy long enough: verified at once.
    assert kinds(done) == ["resolved", "verified"]
    assert done[0].note.startswith("王工: 重新压接网线水晶头")
    detail = await manager.get(number)
    assert [(e.kind, e.from_state, e.to_state, e.actor, e.via) for e in detail.events[-3:]] == [
        ("resolved", "acknowledged", "resolved", "system", "system"),
        ("resolved", "resolved", "resolved", "王工", "cli"),
        ("verified", "resolved", "verified", "system", "system")]
    assert detail.ticket.state == "verified" and not detail.ticket.awaiting_record
    assert detail.service_records[0]["engineer"] == "王工"
    assert detail.ticket.sign_off_refusal is None


async def test_record_written_before_enough_healthy_polls_is_verified_by_later_polls(
        manager: TicketManager) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.acknowledge(number, "李四")
    await manager.handle([fault("cam-01", CLEARED, T0 + HOUR)])
    assert kinds(await manager.resolve(number, "王工", RECORD)) == ["resolved"]
    assert kinds(await manager.device_healthy("cam-01", polls=3)) == ["verified"]


async def test_paper_receipt_of_a_verified_ticket_closes_it_with_who_recorded_it(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    await manager.device_healthy("cam-01", polls=3)
    # The engineer's pre-visit brief lists it as waiting for the site's sign-off.
    brief = await build_brief(store, SITE, site_name="湖畔花园", language="zh-CN",
                              contacts=(), now=T0 + HOUR)
    assert [t.number for t in brief.awaiting_sign_off] == [number]
    clock.now = T0 + DAY
    events = await manager.sign_off(number, Actor("王工", "cli"),
                                    SignOff("张经理", "已恢复", channel="paper", receipt="HZ-0042"))
    assert kinds(events) == ["signed_off", "closed"]
    assert events[0].note == "signed off by 张经理 on paper receipt HZ-0042: 已恢复"
    detail = await manager.get(number)
    assert detail.ticket.close_reason == "signed_off"
    assert detail.ticket.signed_off_at == T0 + DAY
    assert detail.sign_offs == ({"name": "张经理", "at": T0 + DAY, "comment": "已恢复",
                                 "channel": "paper", "receipt": "HZ-0042",
                                 "recorded_by": "王工", "visit_id": None},)
    with pytest.raises(IllegalTransition, match="it is closed"):
        await manager.sign_off(number, "王工", SignOff("张经理"))
    brief = await build_brief(store, SITE, site_name="湖畔花园", language="zh-CN",
                              contacts=(), now=T0 + DAY)
    assert brief.awaiting_sign_off == ()


async def test_work_order_needs_no_verification_and_closes_on_sign_off(
        store: Store, clock: Clock) -> None:
    manager = TicketManager(store, lambda: {SITE: TERMS}, clock)
    (order,) = [e for e in await manager.tick(T0) if e.system == "cctv"]
    await manager.acknowledge(order.ticket, "王工")
    ticket = (await manager.get(order.ticket)).ticket
    await manager.complete_preventive(order.ticket, "王工", "王工",
                                      {item: (True, "") for item in ticket.checklist})
    assert (await manager.get(order.ticket)).ticket.needs_verification is False
    signed = await manager.sign_off(order.ticket, "张经理", SignOff("张经理"))
    assert kinds(signed) == ["signed_off", "closed"]


async def test_without_auto_close_only_a_sign_off_closes(store: Store, clock: Clock) -> None:
    manager = TicketManager(store, lambda: {}, clock, close_after=None)
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    await manager.device_healthy("cam-01", polls=3)
    assert await manager.tick(T0 + 365 * DAY) == []
    assert (await manager.get(number)).ticket.state == "verified"


async def test_auto_close_counts_the_configured_days_from_the_verification(
        store: Store, clock: Clock) -> None:
    manager = TicketManager(store, lambda: {}, clock, close_after=2.5 * DAY)
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    clock.now = T0 + HOUR
    await manager.device_healthy("cam-01", polls=3)
    assert await manager.tick(T0 + HOUR + 2.5 * DAY - 1) == []
    (closed,) = await manager.tick(T0 + HOUR + 2.5 * DAY)
    assert closed.note == "auto-closed: no sign-off within 2.5 days"
    assert (await manager.get(number)).ticket.close_reason == "no_sign_off"


async def test_a_sign_off_after_the_auto_close_is_recorded_and_the_ticket_stays_closed(
        store: Store, clock: Clock) -> None:
    terms = replace(TERMS, contract_start=None)
    manager = TicketManager(store, lambda: {SITE: terms}, clock, close_after=2 * DAY)
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    await manager.acknowledge(number, "李四")
    await manager.handle([fault("cam-01", CLEARED, T0 + 2 * HOUR)])
    await manager.resolve(number, "王工", RECORD)
    await manager.device_healthy("cam-01", polls=3)
    (closed,) = await manager.tick(T0 + 3 * DAY)
    assert closed.note == "auto-closed: no sign-off within 2 days"
    assert (await manager.get(number)).ticket.sign_off_refusal is None   # still signable

    clock.now = T0 + 5 * DAY
    late = await manager.sign_off(number, Actor("张经理", "link"), SignOff("张经理", "修好了"))
    assert kinds(late) == ["signed_off"]                     # no reopen, no second close
    assert late[0].state == "closed"
    assert late[0].note == "signed off by 张经理 after the auto-close: 修好了"
    assert local_note(late[0].note, "zh-CN", "Asia/Shanghai") == \
        "张经理 验收签字（系统自动关闭后补签，工单不重开）：修好了"
    detail = await manager.get(number)
    t = detail.ticket
    assert (t.state, t.close_reason, t.closed_at) == ("closed", "no_sign_off", T0 + 3 * DAY)
    assert t.signed_off_at == T0 + 5 * DAY and t.sign_off_refusal == "signed_off"
    assert [(e.kind, e.actor, e.via) for e in detail.events][-2:] == [
        ("closed", "system", "system"), ("signed_off", "张经理", "link")]
    # The receipt carries the signature, marked as given after the system closed it.
    (sheet,) = sheets_of(detail)
    assert [(r.name, r.at, r.late) for r in sheet.receipts] == [("张经理", T0 + 5 * DAY, True)]
    with pytest.raises(IllegalTransition, match="it is closed"):
        await manager.sign_off(number, "张经理", SignOff("张经理"))


async def test_a_ticket_closed_by_sign_off_takes_no_second_one(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    await manager.device_healthy("cam-01", polls=3)
    await manager.sign_off(number, "张经理", SignOff("张经理"))
    with pytest.raises(IllegalTransition, match="it is closed"):
        await manager.sign_off(number, "李经理", SignOff("李经理"))


@pytest.mark.parametrize(("state", "failing", "awaiting", "signed", "refusal"), [
    ("open", False, False, False, "not_resolved"),
    ("acknowledged", False, False, False, "not_resolved"),
    ("resolved", True, False, False, "failing"),
    ("resolved", False, True, False, "awaiting_record"),
    ("resolved", False, False, False, None),
    ("verified", False, False, False, None),
    ("resolved", False, False, True, "signed_off"),
    ("closed", False, False, False, "signed_off"),
    ("closed", False, False, "auto", None),
    ("closed", False, False, "auto-signed", "signed_off"),
])
def test_sign_off_refusal_says_why_a_page_shows_no_form(
        state: str, failing: bool, awaiting: bool, signed: bool | str,
        refusal: str | None) -> None:
    assert sign_off_refusal(state, fault_active=failing, awaiting_record=awaiting,
                            signed_off=signed in (True, "auto-signed"),
                            auto_closed=signed in ("auto", "auto-signed")) == refusal


async def test_notifications_word_the_systems_check_and_the_clients_acceptance_apart(
        manager: TicketManager) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    (verified,) = await manager.device_healthy("cam-01", polls=3)
    signed, closed = await manager.sign_off(number, "张经理", SignOff("张经理"))
    system = render(verified)
    client = render(signed)
    assert "系统确认恢复" in system.subject and "验收" not in system.plain
    assert "用户已验收" in client.subject and "系统确认恢复" not in client.plain
    assert "Recovery confirmed by monitoring" in render(verified, language="en").subject
    assert "Accepted by the client" in render(signed, language="en").subject
    assert "工单已关闭" in render(closed).subject
