"""The MQTT source's settings (``sources.mqtt``) and check options (``params``).

Both are strict (unknown keys fail at config load, with file:line); check options are
checked against the shipped profiles and MQTT's topic filter rules.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from elvwatch.probes.mqtt_payload import compile_path
from elvwatch.probes.mqtt_profiles import (
    RENAMED,
    VALUE_NAME,
    Profile,
    builtin_profiles,
    has_wildcards,
    plain_profile,
    render,
    valid_filter,
)

__all__ = ["BrokerSettings", "MqttCheckOptions", "MqttSettings"]


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The broker's address.
    host: str = Field(min_length=1, max_length=253)
    # Default 1883, or 8883 with tls.
    port: int | None = Field(None, ge=1, le=65535)
    # Connect with TLS.
    tls: bool = False
    # CA bundle for a broker with a private CA; the system store otherwise.
    ca_file: Path | None = None
    # Skip certificate and host name checks: for a lab broker only, never in production.
    tls_insecure: bool = False
    # The credentials (credentials.<name>) with the broker login.
    credentials: str | None = None
    # The MQTT client id; default: a random one the client library makes up.
    client_id: str | None = Field(None, min_length=1, max_length=128)
    # Seconds of the MQTT keep-alive: pings keep an idle connection known to be alive.
    keepalive: int = Field(60, ge=5, le=3600)

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class MqttSettings(BaseModel):
    """The top-level ``sources.mqtt`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The brokers by name; mqtt checks name theirs in params.broker.
    brokers: dict[str, BrokerSettings] = Field(default_factory=dict)
    # Incoming messages waiting per broker; beyond this they are dropped and counted.
    queue_size: int = Field(10_000, ge=10, le=1_000_000)
    # Payloads larger than this (bytes) are rejected unread.
    max_payload: int = Field(65_536, ge=64, le=16 * 1024 * 1024)
    # How often silence is checked: a stale device is reported within this of max_age.
    sweep_seconds: float = Field(1.0, gt=0, le=60)
    # First wait before reconnecting to a lost broker; doubles each time, jittered ...
    reconnect_min_seconds: float = Field(1.0, gt=0, le=60)
    # ... up to this.
    reconnect_max_seconds: float = Field(60.0, gt=0, le=3600)


class MqttCheckOptions(BaseModel):
    """``params`` of a ``type: mqtt`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which of sources.mqtt.brokers; may be left out when there is only one.
    broker: str | None = None
    # Topic filter (a profile's {base}); may use {device}, {site}, {host} and {key}.
    topic: str = Field(min_length=1, max_length=1024)
    # Fills {key} in the profile (a Frigate camera, a PAI zone name); default device id.
    key: str | None = Field(None, min_length=1, max_length=256)
    # What the device publishes and how to read it (access_control, zigbee2mqtt, frigate,
    # paradox_pai_*); none: generic JSON.
    profile: str | None = None
    # Seconds of silence after which the device is down (stale); none: never stale.
    max_age: float | None = Field(None, gt=0)
    # Without a profile: where the value is in a JSON payload, and its name.
    json_path: str | None = None
    # Without a profile: the value's name (mqtt.value).
    value: str = Field("mqtt.value", pattern=VALUE_NAME)
    # Without a profile: a topic saying online/offline (often the device's Last Will).
    availability_topic: str | None = None
    # MQTT QoS of the subscription (0 or 1).
    qos: int = Field(0, ge=0, le=1)
    # A profile's expected topics not seen this long after subscribing, while the
    # bridge talks, are reported missing (retained topics arrive at once; bridges that
    # publish on a cycle need a cycle or two).
    expect_seconds: float = Field(120.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _consistent(self) -> MqttCheckOptions:
        if self.profile is not None:
            known = builtin_profiles()
            if self.profile in RENAMED:
                raise ValueError(f"profile {self.profile!r}: {RENAMED[self.profile]}")
            if self.profile not in known:
                raise ValueError(f"unknown profile {self.profile!r} "
                                 f"(known: {', '.join(sorted(known))})")
            if self.json_path or self.availability_topic or self.value != "mqtt.value":
                raise ValueError("json_path, value and availability_topic are for checks "
                                 "without a profile; the profile defines them")
        probe = dict.fromkeys(("base", "key", "device", "site", "host"), "x")
        for spec in self.resolved_profile().topics:
            problem = valid_filter(render(spec.topic, {**probe, "base": self.topic}))
            if problem:
                raise ValueError(f"topic {spec.topic!r}: {problem}")
        if self.json_path is not None:
            compile_path(self.json_path)
        return self

    def resolved_profile(self) -> Profile:
        if self.profile is not None:
            return builtin_profiles()[self.profile]
        return plain_profile(self.json_path, self.value, self.availability_topic,
                             wildcard=has_wildcards(self.topic))
