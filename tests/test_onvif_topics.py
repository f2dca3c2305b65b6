"""Vendor event topics through a real PullPoint: the simulator sends the messages the
cameras we meet send (ONVIF standard topics, which Hikvision, Dahua, Axis and Uniview
firmware use, and the vendor/OEM variants seen in the field), the zeep client pulls
them, and ``probes.onvif_events`` maps each to tamper / video loss / storage failure /
recording state.  These are also the cases onvif-parsers was weighed on (README)."""

from __future__ import annotations

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.probes.onvif_events import classify, is_problem
from tests.test_onvif_events import subscribe_and_pull

# (topic, source items, data items) → (kind, condition active)
CASES: list[tuple[str, dict[str, str], dict[str, str], str | None, bool | None]] = [
    ("tns1:VideoSource/GlobalSceneChange/ImagingService", {"Source": "VideoSource_1"},
     {"State": "true"}, "tamper", True),
    ("tns1:VideoSource/GlobalSceneChange/ImagingService", {"Source": "VideoSource_1"},
     {"State": "TRUE"}, "tamper", True),                 # firmware that shouts
    ("tns1:RuleEngine/TamperDetector/Tamper",            # Hikvision
     {"VideoSource": "V_SRC_000", "Rule": "MyTamperDetectorRule"}, {"IsTamper": "true"},
     "tamper", True),
    ("tns1:UserAlarm/VideoCover", {"VideoSourceToken": "vstoken_ch0001"},
     {"State": "FALSE"}, "tamper", False),               # OEM firmware
    ("ns1:VideoSource/GlobalSceneChange/ImagingService", {"Source": "VideoSource_1"},
     {"State": "true"}, "tamper", True),                 # another prefix, same namespace
    ("tns1:VideoSource/SignalLoss", {"VideoSource": "VideoSource_1"}, {"State": "true"},
     "signal_loss", True),
    ("tns1:Device/HardwareFailure/StorageFailure", {"Token": "Storage_1"},
     {"Failed": "true"}, "storage_failure", True),
    ("tnsaxis:Storage/Alert", {"disk_id": "SD_DISK"}, {"alert": "1"}, "storage_failure", True),
    ("tns1:RecordingConfig/JobState", {"RecordingJobToken": "RecordingJob_1"},
     {"State": "Error"}, "recording", True),
    ("tns1:RecordingHistory/Recording/State", {"RecordingToken": "Recording_1"},
     {"IsRecording": "false"}, "recording", True),
    ("tns1:Device/Trigger/DigitalInput", {"InputToken": "1"}, {"LogicalState": "true"},
     None, None),
]


async def test_vendor_topics_pulled_over_a_subscription_map_to_our_conditions() -> None:
    async with OnvifSimulator() as sim:
        def raise_all() -> None:
            for topic, source, data, _, _ in CASES:
                sim.raise_event(topic, source, data)
        notes = await subscribe_and_pull(sim, raise_all)
    assert len(notes) == len(CASES)
    for note, (topic, _, _, kind, active) in zip(notes, CASES, strict=True):
        assert note.topic == topic
        assert classify(note) == kind, topic
        if kind is not None:
            assert is_problem(kind, note) is active, (topic, note.data)
