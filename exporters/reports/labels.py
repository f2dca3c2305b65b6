"""Devices as documents name them: by the archive's name and location, never by id alone.

A device without a name in the archive is named by its kind in the site's language
and its location ("摄像机 · 2栋 / B1"); only a device without either falls back to its id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from elvwatch.tickets.glossary import term
from elvwatch.tickets.notes import display_title
from elvwatch.tickets.store import DeviceRow


@dataclass(frozen=True, slots=True)
class Label:
    name: str | None
    kind: str
    location: str | None


class Labels:
    """Device id → what a document prints for it, in one language."""

    def __init__(self, labels: dict[str, Label], language: str) -> None:
        self._labels = labels
        self.language = language

    def name(self, device: str | None) -> str:
        if not device:
            return ""
        label = self._labels.get(device)
        if label is None:
            return device
        if label.name:
            return label.name
        kind = term("device_kind", label.kind, self.language)
        return f"{kind} · {label.location}" if label.location else f"{kind} {device}"

    def location(self, device: str | None) -> str:
        label = self._labels.get(device or "")
        return label.location or "" if label is not None else ""

    def title(self, title_zh: str, title_en: str, device: str | None) -> str:
        """A ticket's title with the device by name."""
        return display_title(title_zh, title_en, device, self.name(device) if device else None,
                             self.language)


async def site_labels(session: AsyncSession, site: str) -> dict[str, Label]:
    """Every device the site ever had (removed ones too: old tickets name them)."""
    rows = await session.execute(select(DeviceRow.id, DeviceRow.name, DeviceRow.kind,
                                        DeviceRow.location).where(DeviceRow.site == site))
    return {device: Label(name, kind, location) for device, name, kind, location in rows.all()}
