"""ONVIF event notifications (PullMessages / metadata stream) → what they mean for us.

``parse_notification`` reads one ``wsnt:NotificationMessage`` element (topic,
PropertyOperation, Source and Data SimpleItems); ``classify`` maps its topic to one of
the kinds elvwatch watches, across the topic names major vendors use:

* tamper — ``VideoSource/GlobalSceneChange/*`` (ONVIF), ``ImageTooDark|Blurry|Bright``,
  Hikvision ``RuleEngine/TamperDetector``, ``UserAlarm/VideoCover`` (OEM firmware);
* signal_loss — ``VideoSource/SignalLoss``, ``Device/…/VideoLoss``;
* storage_failure — ``Device/HardwareFailure/StorageFailure``, Axis ``Storage/Alert``;
* recording — ``RecordingConfig/JobState``, ``RecordingHistory/Recording/State``;
* motion — ``VideoSource/MotionAlarm``, ``RuleEngine/CellMotionDetector/Motion``,
  ``RuleEngine/MotionRegionDetector``, Axis ``VMD``/``PIR`` (ignored unless configured).

Element text is device-sent: every string is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probes.base import bounded

WSNT = "http://docs.oasis-open.org/wsn/b-2"
MAX_ITEMS = 16

_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tamper", ("videosource/globalscenechange", "videosource/imagetoodark",
                "videosource/imagetooblurry", "videosource/imagetoobright",
                "ruleengine/tamperdetector", "useralarm/videocover")),
    ("signal_loss", ("videosource/signalloss", "videoloss")),
    ("storage_failure", ("hardwarefailure/storagefailure", "storage/alert",
                         "storage/failure")),
    ("recording", ("recordingconfig/jobstate", "recordinghistory/recording/state")),
    ("motion", ("videosource/motionalarm", "motiondetector", "motionregiondetector",
                "/vmd/", "sensor/pir", "videoanalytics/motion")),
)
# Data item names whose value says whether the condition holds, by vendor.
# ONVIF Device/HardwareFailure/* carry ``Failed`` (core spec, "Device Topics").
_STATE_ITEMS = ("state", "istamper", "ismotion", "active", "alert", "signallost",
                "failed", "value", "logicalstate")
_TRUE = {"true", "1", "active", "on", "failed", "lost"}
# Recording job states meaning "not recording" (ONVIF RecordingJobState: Idle/Active/…).
_NOT_RECORDING = {"idle", "error", "stopped", "false", "0"}


@dataclass(frozen=True, slots=True)
class Notification:
    topic: str
    operation: str                  # Initialized, Changed, Deleted ("" if absent)
    source: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def parse_notification(element: Any) -> Notification:
    """From an lxml/ElementTree ``NotificationMessage`` element."""
    topic, operation = "", ""
    source: dict[str, str] = {}
    data: dict[str, str] = {}
    for child in element.iter():
        name = _local(child.tag)
        if name == "Topic" and not topic:
            topic = bounded("".join(child.itertext()), 200)
        elif name == "Message" and child.get("PropertyOperation") and not operation:
            operation = bounded(child.get("PropertyOperation") or "", 20)
        elif name in ("Source", "Data"):
            target = source if name == "Source" else data
            for item in child.iter():
                if _local(item.tag) == "SimpleItem" and len(target) < MAX_ITEMS:
                    target[bounded(item.get("Name") or "", 64)] = bounded(
                        item.get("Value") or "", 128)
    return Notification(topic, operation, source, data)


def classify(note: Notification) -> str | None:
    """The kind of a notification, or None for topics we do not watch."""
    path = "/".join(part.split(":", 1)[-1] for part in note.topic.lower().split("/"))
    for kind, needles in _KINDS:
        if any(needle in f"/{path}/" or needle in path for needle in needles):
            return kind
    return None


def is_problem(kind: str, note: Notification) -> bool | None:
    """Whether the condition is active now (a problem); None when the data says nothing."""
    values = {k.lower(): v.strip().lower() for k, v in note.data.items()}
    if kind == "recording":
        if "isrecording" in values:       # RecordingHistory/Recording/State (boolean)
            return values["isrecording"] not in _TRUE
        state = values.get("state")
        return None if state is None else state in _NOT_RECORDING
    if kind == "storage_failure" and "alert" in values:
        return values["alert"] in _TRUE
    for name in _STATE_ITEMS:
        if name in values:
            return values[name] in _TRUE
    return None


def notification_from_zeep(message: Any) -> Notification:
    """From the object zeep builds for a PullMessages NotificationMessage."""
    from probes.onvif_client import serialize

    plain = serialize(message)
    topic = plain.get("Topic")
    topic_text = topic.get("_value_1") if isinstance(topic, dict) else topic
    wrapper = plain.get("Message")
    body = wrapper.get("_value_1") if isinstance(wrapper, dict) else None
    body = serialize(body) if body is not None and not isinstance(body, dict) else body or {}

    def items(part: object) -> dict[str, str]:
        found = part.get("SimpleItem") if isinstance(part, dict) else None
        rows = found if isinstance(found, list) else []
        return {bounded(str(r.get("Name") or ""), 64): bounded(str(r.get("Value") or ""), 128)
                for r in rows[:MAX_ITEMS] if isinstance(r, dict)}

    return Notification(bounded(str(topic_text or ""), 200),
                        bounded(str(body.get("PropertyOperation") or ""), 20),
                        items(body.get("Source")), items(body.get("Data")))
