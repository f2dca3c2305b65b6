"""Topology: a parent's fault explains its children's same-cause faults."""

from __future__ import annotations

import random

from elvwatch.probes.base import Status
from elvwatch.rules.engine import Engine
from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.rules.model import DeviceSpec
from elvwatch.rules.topology import Topology
from tests.rulekit import device, engine, firing_roots, ob

FIRING, CLEARED = FaultState.FIRING, FaultState.CLEARED
CAMERA_CHECKS = {"icmp": "icmp", "rtsp": "rtsp", "onvif": "onvif"}


def site(cameras: int = 12) -> list[DeviceSpec]:
    return [device("core", "switch", "network"),
            device("poe-1", "switch", "network", depends_on=["core"]),
            *[device(f"cam-{i:02d}", "camera", "cctv", CAMERA_CHECKS, depends_on=["poe-1"])
              for i in range(cameras)]]


def down(eng: Engine, ids: list[str], seen: list[FaultTransition]) -> None:
    for dev in ids:
        checks = CAMERA_CHECKS if dev.startswith("cam") else {"icmp": "icmp"}
        for check in checks:
            if check != "onvif":
                seen += eng.observe(ob(dev, check, Status.DOWN), "down")


def up(eng: Engine, ids: list[str], seen: list[FaultTransition]) -> None:
    for dev in ids:
        seen += eng.observe(ob(dev, "icmp"), "up")
        if dev.startswith("cam"):
            seen += eng.observe(ob(dev, "rtsp"), "up")


def tickets(seen: list[FaultTransition]) -> dict[str, FaultTransition]:
    """What the ticket stage would have open: firing, not behind a root cause."""
    return {fp: t for fp, t in firing_roots(seen).items() if t.root_cause is None}


def test_switch_failure_with_12_cameras_behind_it_is_one_fault_listing_12_affected() -> None:
    eng, _ = engine(site())
    seen: list[FaultTransition] = []
    down(eng, ["poe-1"], seen)
    down(eng, [f"cam-{i:02d}" for i in range(12)], seen)
    open_ = tickets(seen)
    assert list(open_) == [fingerprint("s1", "poe-1", "device_unreachable")]
    parent = open_[fingerprint("s1", "poe-1", "device_unreachable")]
    assert parent.affected == tuple(f"cam-{i:02d}" for i in range(12))
    children = [t for t in firing_roots(seen).values() if t.device.startswith("cam")]
    # each camera: unreachable and (after 3 polls) stream down, all under the switch
    assert {t.root_cause for t in children} == {parent.fingerprint}


def test_cameras_that_fail_before_their_switch_are_adopted_when_it_fails() -> None:
    eng, _ = engine(site())
    seen: list[FaultTransition] = []
    cams = [f"cam-{i:02d}" for i in range(12)]
    down(eng, cams, seen)
    assert len(tickets(seen)) == 12  # nothing explains them yet
    down(eng, ["poe-1"], seen)
    parent_fp = fingerprint("s1", "poe-1", "device_unreachable")
    assert list(tickets(seen)) == [parent_fp]
    firing_parent = [t for t in seen if t.fingerprint == parent_fp]
    assert firing_parent[0].affected == tuple(cams)  # one transition, all twelve listed
    adopted = [t for t in seen if t.device in cams and t.previous is FIRING
               and t.state is FIRING]
    assert {t.root_cause for t in adopted} == {parent_fp} and len(adopted) == 12


def test_random_failure_order_still_ends_with_one_root_fault() -> None:
    rng = random.Random(7)
    for _ in range(20):
        eng, _ = engine(site())
        seen: list[FaultTransition] = []
        order = ["poe-1", *[f"cam-{i:02d}" for i in range(12)]]
        rng.shuffle(order)
        down(eng, order, seen)
        down(eng, order, seen)  # a second round: stream_down needs more polls
        down(eng, order, seen)
        assert list(tickets(seen)) == [fingerprint("s1", "poe-1", "device_unreachable")]


def test_camera_still_down_when_its_switch_recovers_becomes_its_own_fault() -> None:
    eng, _ = engine(site(3))
    seen: list[FaultTransition] = []
    down(eng, ["poe-1", "cam-00", "cam-01", "cam-02"], seen)
    seen.clear()
    up(eng, ["poe-1", "cam-00", "cam-01"], seen)
    parent_fp = fingerprint("s1", "poe-1", "device_unreachable")
    assert [(t.previous, t.state) for t in seen if t.fingerprint == parent_fp] == [
        (FIRING, CLEARED)]
    own = [t for t in seen if t.device == "cam-02" and t.rule == "device_unreachable"]
    assert [(t.previous, t.state, t.root_cause) for t in own] == [(FIRING, FIRING, None)]
    assert list(tickets(seen)) == [fingerprint("s1", "cam-02", "device_unreachable")]


def test_chain_of_switches_resolves_to_the_topmost_failed_device() -> None:
    eng, _ = engine(site(2))
    seen: list[FaultTransition] = []
    down(eng, ["cam-00", "poe-1", "cam-01", "core"], seen)
    core_fp = fingerprint("s1", "core", "device_unreachable")
    assert list(tickets(seen)) == [core_fp]
    assert firing_roots(seen)[core_fp].affected == ("cam-00", "cam-01", "poe-1")
    # the core comes back, the PoE switch does not: it takes its cameras over
    seen.clear()
    up(eng, ["core"], seen)
    poe_fp = fingerprint("s1", "poe-1", "device_unreachable")
    assert list(tickets(seen)) == [poe_fp]
    assert firing_roots(seen)[poe_fp].affected == ("cam-00", "cam-01")


def test_unreachable_camera_explains_its_own_stream_down() -> None:
    eng, _ = engine(site(1))
    seen: list[FaultTransition] = []
    for _ in range(3):
        down(eng, ["cam-00"], seen)
    unreachable = fingerprint("s1", "cam-00", "device_unreachable")
    stream = firing_roots(seen)[fingerprint("s1", "cam-00", "stream_down")]
    assert stream.root_cause == unreachable
    assert list(tickets(seen)) == [unreachable]


def test_fault_of_another_cause_under_a_failed_switch_keeps_its_own_ticket() -> None:
    eng, _ = engine(site(1))
    seen: list[FaultTransition] = []
    for _ in range(3):
        seen += eng.observe(ob("cam-00", "onvif", values={"onvif.clock_offset_seconds": 500}),
                            "up")
    down(eng, ["poe-1"], seen)
    drift = fingerprint("s1", "cam-00", "clock_drift")
    assert drift in tickets(seen)


def test_topology_walks_ancestors_and_descendants_nearest_first() -> None:
    topo = Topology({"cam": ["poe"], "poe": ["core"], "core": ["ups"], "door": ["ups"],
                     "ups": []})
    assert topo.ancestors("cam") == ("poe", "core", "ups")
    assert topo.descendants("ups") == ("core", "door", "poe", "cam")
    assert topo.explainers("poe") == ("poe", "core", "ups")


def test_topology_survives_a_cycle() -> None:
    topo = Topology({"a": ["b"], "b": ["a"]})
    assert topo.ancestors("a") == ("b",)



def test_cameras_confirmed_before_their_failing_switch_wait_for_it_and_open_no_ticket() -> None:
    eng, clock = engine(site(), hold_seconds=120)
    seen: list[FaultTransition] = []
    # The switch's first ping failed; the state tracker has not confirmed it down yet.
    seen += eng.observe(ob("poe-1", "icmp", Status.DOWN), "up")
    cams = [f"cam-{i:02d}" for i in range(12)]
    down(eng, cams, seen)
    assert tickets(seen) == {} and [t for t in seen if t.state is FIRING] == []
    clock.advance(60)
    down(eng, ["poe-1"], seen)  # confirmed a poll later
    parent_fp = fingerprint("s1", "poe-1", "device_unreachable")
    assert list(tickets(seen)) == [parent_fp]
    assert tickets(seen)[parent_fp].affected == tuple(cams)
    own = [t for t in seen if t.device in cams and t.state is FIRING and t.root_cause is None]
    assert own == []  # no camera ever looked like a ticket of its own


def test_held_camera_gets_its_own_fault_when_its_switch_never_confirms() -> None:
    eng, clock = engine(site(1), hold_seconds=120)
    seen: list[FaultTransition] = []
    seen += eng.observe(ob("poe-1", "icmp", Status.DOWN), "up")
    down(eng, ["cam-00"], seen)
    assert tickets(seen) == {}
    seen += eng.observe(ob("poe-1", "icmp"), "up")  # a lost ping, nothing more
    clock.advance(119)
    assert eng.tick() == []
    clock.advance(1)
    released = eng.tick()
    assert [(t.device, t.rule, t.state, t.root_cause) for t in released] == [
        ("cam-00", "device_unreachable", FIRING, None)]


def test_camera_under_a_healthy_switch_is_not_held() -> None:
    eng, _ = engine(site(1), hold_seconds=120)
    seen: list[FaultTransition] = []
    seen += eng.observe(ob("poe-1", "icmp"), "up")
    down(eng, ["cam-00"], seen)
    assert list(tickets(seen)) == [fingerprint("s1", "cam-00", "device_unreachable")]


def test_held_fault_that_clears_before_release_is_never_reported() -> None:
    eng, clock = engine(site(1), hold_seconds=120)
    seen: list[FaultTransition] = []
    seen += eng.observe(ob("poe-1", "icmp", Status.DOWN), "up")
    down(eng, ["cam-00"], seen)
    up(eng, ["cam-00"], seen)
    clock.advance(300)
    seen += eng.tick()
    assert [t for t in seen if t.device == "cam-00" and t.rule == "device_unreachable"] == []


def test_port_level_a_dark_port_explains_its_camera_only() -> None:
    """Camera → PoE switch port: the switch's port values reach each camera as check
    ``uplink`` (as the daemon derives them).  A camera on a healthy port is not held
    and gets its own fault; one whose port lost power waits for the port's fault,
    which then explains it."""
    eng, _ = engine([device("poe-1", "switch", "network", {"snmp": "snmp"}),
                     device("cam-a", "camera", "cctv", depends_on=["poe-1"]),
                     device("cam-b", "camera", "cctv", depends_on=["poe-1"])],
                    hold_seconds=120)
    seen: list[FaultTransition] = []
    state = {"cam-a": "up", "cam-b": "up"}

    def switch_poll(port_3_lost: int) -> None:
        lost = {'snmp.poe.lost{port_index="1.3"}': float(port_3_lost),
                'snmp.poe.lost{port_index="1.5"}': 0.0}
        status = Status.DEGRADED if port_3_lost else Status.OK
        seen.extend(eng.observe(ob("poe-1", "snmp", status, lost), "degraded" if port_3_lost
                                else "up"))
        for cam, dark in (("cam-a", port_3_lost), ("cam-b", 0)):
            uplink = {"snmp.uplink.oper_up": float(1 - dark),
                      "snmp.uplink.poe_lost": float(dark)}
            seen.extend(eng.observe(ob(cam, "uplink", Status.DEGRADED if dark else Status.OK,
                                       uplink), state[cam]))

    def camera_down(cam: str) -> None:
        state[cam] = "down"
        seen.extend(eng.observe(ob(cam, "icmp", Status.DOWN), "down"))

    switch_poll(0)
    camera_down("cam-b")  # its port is fine: nothing could explain it
    own = fingerprint("s1", "cam-b", "device_unreachable")
    assert list(tickets(seen)) == [own]
    switch_poll(1)        # port 3 stops delivering power: first sight
    camera_down("cam-a")  # confirmed down before the port's fault: held
    assert list(tickets(seen)) == [own]
    switch_poll(1)
    port = fingerprint("s1", "poe-1", "switch_port_down")
    assert set(tickets(seen)) == {own, port}
    assert tickets(seen)[port].affected == ("cam-a",)
    roots = firing_roots(seen)
    for rule in ("device_unreachable", "uplink_port_down"):
        assert roots[fingerprint("s1", "cam-a", rule)].root_cause == port
    assert roots[own].root_cause is None
    assert fingerprint("s1", "cam-b", "uplink_port_down") not in roots


def test_child_a_clear_count_behind_its_recovered_root_opens_no_ticket_of_its_own() -> None:
    # The switch and the camera come back; the camera's stream fault needs two good
    # polls to clear, the switch's one.  In between it must not stand alone (a ticket
    # that resolves itself seconds later); a camera still dead after the hold does.
    eng, clock = engine(site(2), hold_seconds=120)
    seen: list[FaultTransition] = []
    for _ in range(3):
        down(eng, ["poe-1", "cam-00", "cam-01"], seen)
    stream = fingerprint("s1", "cam-00", "stream_down")
    assert firing_roots(seen)[stream].root_cause == fingerprint("s1", "poe-1",
                                                                "device_unreachable")
    seen.clear()
    clock.advance(30)
    up(eng, ["poe-1", "cam-00"], seen)  # one good rtsp poll of cam-00: clear needs two
    assert tickets(seen) == {}
    clock.advance(30)
    seen += eng.tick()
    up(eng, ["cam-00"], seen)
    assert [t.state for t in seen if t.fingerprint == stream] == [CLEARED]
    assert tickets(seen) == {}
    clock.advance(120)
    seen += eng.tick()  # the hold is over: the camera that stayed dead stands alone
    own = fingerprint("s1", "cam-01", "device_unreachable")
    assert list(tickets(seen)) == [own]  # its stream fault under its own unreachable
    assert firing_roots(seen)[fingerprint("s1", "cam-01", "stream_down")].root_cause == own
