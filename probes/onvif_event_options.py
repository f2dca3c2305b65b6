"""``params`` of an ``onvif_events`` check (validated at config load)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from elvwatch.probes.onvif_options import MAX_ANSWER_BYTES


class OnvifEventsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(None, ge=1, le=65535, description="ONVIF HTTP port (80)")
    motion: bool = Field(False, description="report onvif.motion (off: motion is noise "
                                            "for maintenance)")
    too_dark_is_tamper: bool = Field(
        False, description="count ImageTooDark as tamper (off: every camera without IR "
                           "light raises it each night)")
    # Pulse events (Hikvision's HardDiskError has no state, only "it happened") hold
    # their condition this long after the last one; a repeat restarts it.
    pulse_hold_seconds: float = Field(3600.0, ge=1, le=7 * 86400)
    # 10 min, renewed at 8: long enough that renewals are rare, short enough that a
    # subscription we lost track of dies on the camera soon (cameras have few slots).
    subscription_seconds: float = Field(600.0, ge=2, le=86400)
    # The long-poll: the camera holds PullMessages this long when nothing happens.
    # Shorter notices a dead camera sooner; longer costs fewer requests.
    pull_seconds: float = Field(20.0, ge=1, le=60)
    # Seconds one SOAP call (subscribe, renew, unsubscribe) may take.
    call_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # A rebooting camera is back in 30-120 s: from 5 s doubling finds it soon after
    # without hammering one that is gone for good.
    retry_min_seconds: float = Field(5.0, gt=0, le=3600)
    # A lost subscription is retried from retry_min_seconds, doubling up to this (jittered).
    retry_max_seconds: float = Field(300.0, gt=0, le=86400)
    hold_off_seconds: float = Field(
        900.0, ge=0, le=86400,
        description="after a failed login, keep the credentials away this long "
                    "(shared with the onvif check)")
    adjust_time: bool = Field(True, description="sign WS-Security with the camera's clock")
    max_answer_bytes: int = Field(
        MAX_ANSWER_BYTES, ge=65536, le=64 * 1024 * 1024,
        description="a SOAP answer (PullMessages …) larger than this fails the "
                    "subscription; reading stops there")

    @model_validator(mode="after")
    def _retry_order(self) -> OnvifEventsOptions:
        if self.retry_max_seconds < self.retry_min_seconds:
            raise ValueError("retry_max_seconds must not be below retry_min_seconds")
        return self
