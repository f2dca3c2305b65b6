"""Tickets against real databases: lifecycle, episodes, root causes, SLA clocks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from elvwatch.rules.faults import FaultState
from elvwatch.tickets.actions import PartReplaced, ServiceRecord, SignOff
from elvwatch.tickets.events import TicketEvent, TicketEventKind
from elvwatch.tickets.lifecycle import IllegalTransition, UnknownTicket
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

K = TicketEventKind
FIRING, CLEARED = FaultState.FIRING, FaultState.CLEARED
DAY = 24 * HOUR
RECORD = ServiceRecord("王工", "replaced PoE injector",
                       (PartReplaced("PoE injector"), PartReplaced("cable", device="sw-01")))


@pytest.fixture
def manager(store: Store, clock: Clock) -> TicketManager:
    terms = replace(TERMS, contract_start=None)  # no work orders here: test_preventive has them
    return TicketManager(store, lambda: {SITE: terms}, clock, verify_after_polls=3,
                         reopen_window=24 * HOUR)


def kinds(events: list[TicketEvent]) -> list[str]:
    return [e.kind.value for e in events]


async def test_firing_fault_opens_one_ticket_with_contract_deadlines(
        manager: TicketManager) -> None:
    events = await manager.handle([fault("cam-01", FIRING, T0)])
    assert kinds(events) == ["opened"]
    opened = events[0]
    assert opened.ticket == "T-2026-000001" and opened.id == "T-2026-000001#1"
    assert (opened.site_name, opened.language, opened.location) == ("湖畔花园", "zh-CN", "1栋 / 1F")
    assert opened.response_due == T0 + 12 * HOUR and opened.resolve_due == T0 + 12 * HOUR
    assert await manager.handle([fault("cam-01", FIRING, T0 + 60)]) == []  # same episode
    assert [t.number for t in await manager.list_tickets()] == ["T-2026-000001"]


async def test_full_lifecycle_with_service_record_sign_off_and_feedback(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    assert kinds(await manager.acknowledge(number, "李四", "on my way")) == ["acknowledged"]
    clock.now = T0 + 2 * HOUR
    assert kinds(await manager.resolve(number, "王工", RECORD)) == ["resolved"]
    with pytest.raises(IllegalTransition, match="device cam-01 is still failing"):
        await manager.sign_off(number, "物业 张经理", SignOff("张经理"))
    await manager.handle([fault("cam-01", CLEARED, T0 + 3 * HOUR)])
    clock.now = T0 + 4 * HOUR
    # Signed on site before the probes confirmed the recovery: kept, the ticket waits.
    signed = await manager.sign_off(number, "张经理", SignOff("张经理", "图像正常"))
    assert kinds(signed) == ["signed_off"] and signed[0].note == "signed off by 张经理: 图像正常"
    assert (await manager.get(number)).ticket.state == "resolved"
    clock.now = T0 + 5 * HOUR
    assert kinds(await manager.device_healthy("cam-01", polls=3)) == ["verified", "closed"]
    assert kinds(await manager.add_feedback(number, "客服", 5, "满意")) == ["feedback"]

    detail = await manager.get(number)
    assert [(e.kind, e.from_state, e.to_state, e.actor) for e in detail.events] == [
        ("opened", None, "open", "system"),
        ("acknowledged", "open", "acknowledged", "李四"),
        ("resolved", "acknowledged", "resolved", "王工"),
        ("signed_off", "resolved", "resolved", "张经理"),
        ("verified", "resolved", "verified", "system"),
        ("closed", "verified", "closed", "system"),
        ("feedback", None, "closed", "客服")]
    assert detail.events[1].at == T0 + HOUR
    assert detail.events[5].note == "accepted by 张经理"
    assert detail.ticket.close_reason == "signed_off"
    assert detail.ticket.responded_at == T0 + HOUR
    parts = detail.service_records[0]["parts"]
    assert parts == [  # cam-01's warranty runs to 2027, the switch's ran out in 2025
        {"device": "cam-01", "part": "PoE injector", "quantity": 1, "coverage": "warranty",
         "warranty_until": "2027-01-01", "unit_price_cents": None, "consumable": False},
        {"device": "sw-01", "part": "cable", "quantity": 1, "coverage": "at_cost",
         "warranty_until": "2025-06-30", "unit_price_cents": None, "consumable": False}]
    assert detail.sign_offs[0]["name"] == "张经理"
    assert detail.feedback[0]["rating"] == 5
    assert not detail.ticket.recovered_without_intervention


@pytest.mark.parametrize(("steps", "action", "message"), [
    ([], "verify", "cannot verify ticket T-2026-000001: it is open, verify needs a ticket "
                   "that is resolved"),
    ([], "sign_off", "cannot sign off ticket T-2026-000001: it is open, sign off needs a "
                     "ticket that is resolved or verified"),
    ([], "reopen", "cannot reopen ticket T-2026-000001: it is open"),
    (["acknowledge"], "acknowledge", "cannot acknowledge ticket T-2026-000001: it is "
                                     "acknowledged, acknowledge needs a ticket that is open"),
    (["resolve"], "resolve", "cannot resolve ticket T-2026-000001: it is resolved"),
    (["resolve"], "sign_off", "cannot sign off ticket T-2026-000001: device cam-01 is still "
                              "failing"),
])
async def test_illegal_transitions_are_refused_with_a_reason_and_change_nothing(
        manager: TicketManager, steps: list[str], action: str, message: str) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    calls = {"acknowledge": lambda: manager.acknowledge(number, "a"),
             "resolve": lambda: manager.resolve(number, "a", RECORD),
             "verify": lambda: manager.verify(number, "a"),
             "sign_off": lambda: manager.sign_off(number, "a", SignOff("张经理")),
             "reopen": lambda: manager.reopen(number, "a")}
    for step in steps:
        await calls[step]()
    before = await manager.get(number)
    with pytest.raises(IllegalTransition) as caught:
        await calls[action]()
    assert str(caught.value).startswith(message)
    assert await manager.get(number) == before


async def test_unknown_ticket_is_named(manager: TicketManager) -> None:
    with pytest.raises(UnknownTicket, match="no ticket 'T-1999-000001'"):
        await manager.acknowledge("T-1999-000001", "a")


async def test_fault_that_clears_alone_is_resolved_verified_and_closed_only_days_later(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    resolved = await manager.handle([fault("cam-01", CLEARED, T0 + 600)])
    assert kinds(resolved) == ["resolved"] and resolved[0].note == "recovered without intervention"
    assert (await manager.get(number)).ticket.recovered_without_intervention
    assert await manager.device_healthy("cam-01") == []
    assert await manager.device_healthy("cam-01") == []
    await manager.device_unhealthy("cam-01")  # a failed poll starts the count again
    assert await manager.device_healthy("cam-01", polls=2) == []
    clock.now = T0 + 900
    assert kinds(await manager.device_healthy("cam-01")) == ["verified"]
    # Verified is the system's; only a sign-off or the days without one close it.
    assert (await manager.get(number)).ticket.state == "verified"
    assert await manager.tick(T0 + 900 + 7 * DAY - 1) == []
    closed = await manager.tick(T0 + 900 + 7 * DAY)
    assert kinds(closed) == ["closed"]
    assert closed[0].note == "auto-closed: no sign-off within 7 days"
    ticket = (await manager.get(number)).ticket
    assert (ticket.state, ticket.close_reason, ticket.signed_off_at) == (
        "closed", "no_sign_off", None)
    # Nobody acknowledged it: no response, whatever the system did.
    assert ticket.responded_at is None


async def test_recurrence_within_window_reopens_same_ticket_later_one_opens_new(
        manager: TicketManager, clock: Clock) -> None:
    async def recover_and_sign(at: float) -> None:
        await manager.handle([fault("cam-01", CLEARED, at)])
        await manager.device_healthy("cam-01", polls=3)
        await manager.sign_off(number, "张经理", SignOff("张经理"))

    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await recover_and_sign(T0 + 600)
    assert (await manager.get(number)).ticket.state == "closed"
    again = await manager.handle([fault("cam-01", FIRING, T0 + 2 * HOUR)])
    assert kinds(again) == ["reopened"] and again[0].ticket == number
    assert again[0].note == "fault recurred (recurrence 1)"
    reopened = (await manager.get(number)).ticket
    assert reopened.signed_off_at is None and reopened.close_reason is None
    await manager.handle([fault("cam-01", CLEARED, T0 + 3 * HOUR)])
    reopened_again = await manager.handle([fault("cam-01", FIRING, T0 + 4 * HOUR)])
    assert reopened_again[0].ticket == number  # resolved, not yet closed: same episode
    assert (await manager.get(number)).ticket.recurrences == 2
    await recover_and_sign(T0 + 5 * HOUR)
    late = await manager.handle([fault("cam-01", FIRING, T0 + 5 * HOUR + 25 * HOUR)])
    assert kinds(late) == ["opened"] and late[0].ticket != number


async def test_switch_failure_with_twelve_cameras_opens_one_ticket_listing_them(
        manager: TicketManager) -> None:
    cameras = [f"cam-{i:02d}" for i in range(1, 13)]
    batch = [fault(cam, FIRING, T0, root_cause="sw-01") for cam in cameras]
    batch.append(fault("sw-01", FIRING, T0, severity="major", system="network"))
    events = await manager.handle(batch)
    assert kinds(events) == ["opened"]
    (ticket,) = await manager.list_tickets()
    assert ticket.device == "sw-01" and ticket.affected == tuple(cameras)
    assert ticket.resolve_due is None and ticket.resolve_to_agree  # major: to agree


async def test_suppressed_fault_is_recorded_not_ticketed(manager: TicketManager) -> None:
    assert await manager.handle([fault("cam-01", FIRING, T0, suppressed_by="s1")]) == []
    assert await manager.list_tickets() == []
    # Ticketed once the silence ends and the rule engine re-emits it unmuted.
    assert kinds(await manager.handle([fault("cam-01", FIRING, T0 + HOUR)])) == ["opened"]


async def test_response_and_repair_breaches_escalate_once_each(
        manager: TicketManager) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    assert await manager.tick(T0 + 12 * HOUR - 1) == []
    breached = await manager.tick(T0 + 12 * HOUR)
    assert kinds(breached) == ["breached", "escalated", "breached", "escalated"]
    assert breached[0].note.startswith("response deadline passed")
    assert breached[1].note == ("response deadline passed: escalated (the site names no "
                                "escalation contacts)")
    assert breached[2].note.startswith("resolve deadline passed")
    assert await manager.tick(T0 + 13 * HOUR) == []
    ticket = (await manager.get(number)).ticket
    assert ticket.response_breached and ticket.resolve_breached


async def test_acknowledged_in_time_breaches_only_the_repair_deadline(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    await manager.acknowledge(number, "李四")
    events = await manager.tick(T0 + 12 * HOUR + 1)
    assert [(e.kind.value, e.note.split(" (")[0]) for e in events] == [
        ("breached", "resolve deadline passed"),
        ("escalated", "resolve deadline passed: escalated")]


async def test_major_fault_deadline_to_agree_never_breaches_until_set(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0, severity="major")]))[0].ticket
    await manager.acknowledge(number, "李四")
    assert await manager.tick(T0 + 100 * HOUR) == []
    clock.now = T0 + 101 * HOUR
    events = await manager.set_resolve_due(number, "李四", T0 + 120 * HOUR, "需更换硬盘")
    assert kinds(events) == ["deadline_set"] and events[0].resolve_due == T0 + 120 * HOUR
    assert await manager.tick(T0 + 119 * HOUR) == []
    assert kinds(await manager.tick(T0 + 120 * HOUR)) == ["breached", "escalated"]


async def test_emergency_is_escalated_at_once_with_short_deadlines(
        manager: TicketManager) -> None:
    events = await manager.handle([fault("cam-01", FIRING, T0, severity="emergency")])
    assert kinds(events) == ["opened", "escalated"]
    assert events[0].response_due == T0 + 0.5 * HOUR
    assert events[0].resolve_due == T0 + 4 * HOUR


async def test_resync_after_restart_resolves_faults_that_ended_while_down(
        manager: TicketManager) -> None:
    await manager.handle([fault("cam-01", FIRING, T0), fault("cam-02", FIRING, T0)])
    events = await manager.resync({fault("cam-02", FIRING, T0).fingerprint}, T0 + HOUR)
    assert [(e.device, e.kind.value) for e in events] == [("cam-01", "resolved")]


async def test_stored_events_replay_with_their_stable_ids(manager: TicketManager) -> None:
    sent = await manager.handle([fault("cam-01", FIRING, T0, severity="emergency")])
    replay = await manager.events_after(0)
    assert [e for _, e in replay] == sent
    assert await manager.events_after(replay[-1][0]) == []
    later = await manager.handle([fault("cam-01", CLEARED, T0 + HOUR)])
    assert [e for _, e in await manager.events_after(0, since=T0 + 1)] == later
