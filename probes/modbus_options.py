"""``params`` of a ``modbus`` check, apart from the probe: the config is checked without
loading the Modbus library."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.modbus_maps import load_profile


class ModbusOptions(BaseModel):
    """``params`` of a ``modbus`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = Field(description="shipped map name, or an absolute path to a YAML map")
    unit: int = Field(1, ge=0, le=255, description="Modbus unit id (pymodbus device_id)")

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str) -> str:
        load_profile(value)  # ProfileError is a ValueError: reported at config load
        return value
