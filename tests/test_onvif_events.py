"""ONVIF event parsing: recorded Axis frames, and the simulator's PullPoint over sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.probes.onvif import EVENTS_NS
from elvwatch.probes.onvif_client import close_camera, new_camera
from elvwatch.probes.onvif_events import (
    WSNT,
    Notification,
    classify,
    is_problem,
    notification_from_zeep,
    parse_notification,
)

FIXTURES = Path(__file__).parent / "fixtures" / "onvif"


def _notification(name: str) -> Any:
    root = etree.fromstring((FIXTURES / name).read_bytes())
    return root.find(f".//{{{WSNT}}}NotificationMessage")


@pytest.mark.parametrize(("fixture", "kind", "problem"), [
    ("axis-event-globalscenechange-tamper-init.xml", "tamper", False),
    ("axis-event-storage-alert-init.xml", "storage_failure", False),
    ("axis-event-pir-change.xml", "motion", True),
    ("axis-event-pir-init.xml", "motion", False),
    ("axis-event-vmd4-camera1profile1-change.xml", "motion", True),
    ("axis-event-motionregiondetector-init.xml", "motion", False),
    ("axis-event-io-port1-init.xml", None, None),
    ("axis-event-relay-init.xml", None, None),
])
def test_recorded_axis_events_are_classified(fixture: str, kind: str | None,
                                             problem: bool | None) -> None:
    note = parse_notification(_notification(fixture))
    assert note.operation in ("Initialized", "Changed")
    assert classify(note) == kind
    if kind is not None:
        assert is_problem(kind, note) is problem


def test_storage_alert_fields_are_read() -> None:
    note = parse_notification(_notification("axis-event-storage-alert-init.xml"))
    assert note.topic == "tnsaxis:Storage/Alert"
    assert note.source == {"disk_id": "NetworkShare"}
    assert note.data["alert"] == "0" and len(note.data) == 4


async def subscribe_and_pull(sim: OnvifSimulator, before_pull: Callable[[], object] | None = None,
                             wait: float = 2.0) -> list[Notification]:
    """One new subscription's first PullMessages answer, read with the ONVIF client;
    ``before_pull`` runs once the subscription exists (to raise events into it)."""
    camera = new_camera(sim.host, sim.port, "admin", "secret")
    try:
        await camera.update_xaddrs()
        events = await camera.create_events_service()
        created = await events.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
        address = created.SubscriptionReference.Address._value_1
        camera.xaddrs[f"{EVENTS_NS}/PullPointSubscription"] = camera.rewrite_url(address)
        if before_pull is not None:
            before_pull()
        pullpoint = await camera.create_pullpoint_service()
        async with asyncio.timeout(10):
            answer = await pullpoint.PullMessages({"Timeout": dt.timedelta(seconds=wait),
                                                   "MessageLimit": 100})
        return [notification_from_zeep(m) for m in answer.NotificationMessage or []]
    finally:
        await close_camera(camera)


async def test_simulated_tamper_arrives_through_a_pullpoint_subscription() -> None:
    async with OnvifSimulator() as sim:
        def tamper() -> None:
            assert sim.subscriptions == 1
            sim.tamper(True)
        [note] = await subscribe_and_pull(sim, tamper)
    assert classify(note) == "tamper"
    assert is_problem("tamper", note) is True

