"""The trap receiver's ``sources.snmp_trap`` settings and an ``snmp_trap`` check's
``params``, apart from the receiver: the config is checked without loading the SNMP
library."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SnmpTrapSettings(BaseModel):
    """``sources.snmp_trap`` in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:1162"  # port 0: any free port (tests)
    # v1/v2c communities accepted.
    communities: tuple[str, ...] = ()
    v3_users: tuple[str, ...] = ()  # names of credentials

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, not {value!r}")
        return value


class SnmpTrapOptions(BaseModel):
    """``params`` of an ``snmp_trap`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Extra addresses this device sends traps from (a second interface, a NAT).
    addresses: tuple[str, ...] = Field(default=())

    @field_validator("addresses", mode="before", json_schema_input_type=str)
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
        return value
