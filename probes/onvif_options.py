"""``params`` of an ``onvif`` check, apart from the probe: the config is checked without
loading the ONVIF and HTTP libraries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The largest SOAP answers real devices send are a 64-channel NVR's GetProfiles or
# GetCapabilities, a few hundred KB; 4 MiB leaves room for those and bounds what one
# misbehaving device can make us hold (its answer, then zeep's tree of it).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class OnvifOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=1, le=65535, description="ONVIF HTTP port (80)")
    hold_off_seconds: float = Field(
        900.0, ge=0, le=86400,
        description="after a failed login, keep the credentials away this long")
    adjust_time: bool = Field(True, description="sign WS-Security with the camera's clock")
    max_clock_offset_seconds: float = Field(
        10.0, gt=0, description="a larger |offset| makes the check degraded")
    # At most this many media profiles are read (stream URI each).
    max_profiles: int = Field(8, ge=1, le=32)
    stream: bool = Field(True, description="RTSP DESCRIBE the first profile's stream")
    # The transport asked for in GetStreamUri.
    stream_transport: Literal["RTSP", "HTTP", "UDP", "TCP"] = "RTSP"
    snapshot: bool = Field(False, description="fetch and judge the first profile's snapshot")
    # The snapshot must be this wide (and high, below); none: any size.
    snapshot_width: int | None = Field(None, ge=1)
    # See snapshot_width.
    snapshot_height: int | None = Field(None, ge=1)
    # A larger snapshot fails the check (read stops there).
    max_snapshot_bytes: int = Field(8_000_000, ge=1024, le=64_000_000)
    max_answer_bytes: int = Field(
        MAX_ANSWER_BYTES, ge=65536, le=64 * 1024 * 1024,
        description="a SOAP answer larger than this ends the check (read stops there)")
    # Cameras by the ten thousand: a full poll costs ~16 ms of CPU (six SOAP exchanges),
    # a light one (clock, RTSP DESCRIBE of the remembered stream) about a quarter of it.
    full_poll_seconds: float = Field(
        0.0, ge=0, le=86400,
        description="a full poll (identity, services, profiles, stream URIs, recording) at "
                    "most this often; the polls in between read the clock and DESCRIBE the "
                    "stream the last full poll found, and report its other values again; "
                    "0: every poll is full (always with snapshot, or without stream)")
    recording: bool = Field(
        True, description="read recording job states when the device has the Recording "
                          "service (onvif.recordings_stopped)")
