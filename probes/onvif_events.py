"""ONVIF event notifications (PullMessages / metadata stream) → what they mean for us.

``parse_notification`` reads one ``wsnt:NotificationMessage`` element (topic,
PropertyOperation, Source and Data SimpleItems); ``classify`` maps its topic to one of
the kinds elvwatch watches, across the topic names major vendors use:

* tamper — ``VideoSource/GlobalSceneChange/*`` (ONVIF), ``ImageTooBlurry|Bright``,
  Hikvision ``RuleEngine/TamperDetector``, Axis ``VideoSource/Tampering`` (a pulse),
  ``UserAlarm/VideoCover`` (OEM firmware);
* too_dark — ``VideoSource/ImageTooDark``: every camera without IR light sees it each
  night, so it is tamper only when a check says so (``too_dark_is_tamper``);
* signal_loss — ``VideoSource/SignalLoss``, ``Device/…/VideoLoss``;
* storage_failure — ``Device/HardwareFailure/StorageFailure``, Axis ``Storage/Alert``
  and ``Storage/Disruption``, Hikvision ``HardDiskError``;
* storage_full — Hikvision ``HardDiskFull`` (NVRs raise it when a full disk stops
  recording: overwrite off);
* recording — ``RecordingConfig/JobState``, ``RecordingHistory/Recording/State``;
* motion — ``VideoSource/MotionAlarm``, ``RuleEngine/CellMotionDetector/Motion``,
  ``RuleEngine/MotionRegionDetector``, Axis ``VMD``/``PIR`` (ignored unless configured).

Property events (``PropertyOperation`` Initialized/Changed/Deleted) carry a state and
last until the camera says otherwise; *pulse* events (no PropertyOperation — the
Hikvision disk events have not even a Data item) say "it happened": the events source
holds those for a while (``pulse_hold_seconds``).

Element text is device-sent: every string is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elvwatch.probes.base import bounded

WSNT = "http://docs.oasis-open.org/wsn/b-2"
MAX_ITEMS = 16

_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("too_dark", ("videosource/imagetoodark",)),
    ("tamper", ("videosource/globalscenechange", "videosource/imagetooblurry",
                "videosource/imagetoobright", "ruleengine/tamperdetector",
                "videosource/tampering", "useralarm/videocover")),
    ("signal_loss", ("videosource/signalloss", "videoloss")),
    ("storage_failure", ("hardwarefailure/storagefailure", "storage/alert",
                         "storage/disruption", "storage/failure", "harddiskerror")),
    ("storage_full", ("harddiskfull",)),
    ("recording", ("recordingconfig/jobstate", "recordinghistory/recording/state")),
    ("motion", ("videosource/motionalarm", "motiondetector", "motionregiondetector",
                "/vmd/", "sensor/pir", "videoanalytics/motion")),
)
# Data item names whose value says whether the condition holds, by vendor.
# ONVIF Device/HardwareFailure/* carry ``Failed`` (core spec, "Device Topics").
# Axis says ``disruption`` (storage) and ``tampering`` (the count of a tamper pulse).
_STATE_ITEMS = ("state", "istamper", "ismotion", "active", "alert", "signallost",
                "failed", "disruption", "tampering", "value", "logicalstate")
_TRUE = {"true", "1", "active", "on", "failed", "lost"}
# The operations of property events; anything else (usually none at all) is a pulse.
PROPERTY_OPERATIONS = frozenset({"initialized", "changed", "deleted"})


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
    return topic_kind(note.topic)


def topic_kind(topic: str) -> str | None:
    """The kind of an event topic (``tns1:VideoSource/SignalLoss``), None if unwatched."""
    path = "/".join(part.split(":", 1)[-1] for part in topic.lower().split("/"))
    for kind, needles in _KINDS:
        if any(needle in f"/{path}/" or needle in path for needle in needles):
            return kind
    return None


# One meaning of a recording job's state for the poll and the events (ONVIF
# RecordingJobState: Idle, Active, PartiallyActive, Error): only Active records all it
# should.  PartiallyActive leaves a track unrecorded — the same loss of evidence for its
# channel.  RecordingHistory/Recording/State says it as a boolean (IsRecording).
_RECORDING = frozenset({"active", "true", "1"})


def is_recording(word: str) -> bool | None:
    """Whether a job state (or IsRecording) word means recording; None when empty."""
    word = word.strip().lower()
    return None if not word else word in _RECORDING


def is_pulse(note: Notification) -> bool:
    return note.operation.lower() not in PROPERTY_OPERATIONS


def is_problem(kind: str, note: Notification) -> bool | None:
    """Whether the condition is active now (a problem); None when the data says nothing."""
    values = {k.lower(): v.strip().lower() for k, v in note.data.items()}
    if kind == "recording":
        word = values.get("isrecording", values.get("state"))
        recording = None if word is None else is_recording(word)
        return None if recording is None else not recording
    if kind == "storage_failure" and "alert" in values:
        return values["alert"] in _TRUE
    for name in _STATE_ITEMS:
        if name in values:
            return values[name] in _TRUE
    return None


def notification_from_zeep(message: Any) -> Notification:
    """From the object zeep builds for a PullMessages NotificationMessage."""
    from elvwatch.probes.onvif_client import serialize

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
