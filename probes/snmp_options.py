"""``params`` of an ``snmp`` check, apart from the probe: the config is checked without
loading the SNMP library."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.snmp_profiles import profiles


class SnmpOptions(BaseModel):
    """``params`` of an ``snmp`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 1, 2c or 3 (USM: the device's credentials give user, keys and protocols).
    version: Literal["1", "2c", "3"] = "2c"
    # Comma-separated profile names; empty = the kind's defaults and what matches.
    profiles: tuple[str, ...] = ()
    # Requests resent within the check's timeout when no answer comes.
    retries: int = Field(1, ge=0, le=5)
    max_rows: int = Field(512, ge=1, le=10_000)  # per table column
    # GETBULK max-repetitions of the table walks.
    max_repetitions: int = Field(25, ge=1, le=100)

    @field_validator("version", mode="before",
                     json_schema_input_type=Literal["1", "2c", "3", "2", "v1", "v2c", "v3",
                                                    1, 2, 3])
    @classmethod
    def _version_text(cls, value: object) -> object:
        return {1: "1", 2: "2c", 3: "3", "2": "2c", "v1": "1", "v2c": "2c",
                "v3": "3"}.get(value, value)  # type: ignore[call-overload,unused-ignore]

    # A check's params are scalars: the profiles come as one comma-separated string.
    @field_validator("profiles", mode="before", json_schema_input_type=str)
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("profiles")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = profiles()
        unknown = [n for n in value if n not in known]
        if unknown:
            raise ValueError(f"unknown SNMP profile(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return value
