"""The ticket photos of a handover package: every photo taken on the site's tickets in
the period, oldest first, as ``07-photos/<ticket>-<id>.<ext>``.

A package is built in memory and downloaded in one piece, so the photos in it are
bounded: up to :data:`MAX_BYTES` in all.  The photos past that, and any whose file is
gone or no longer matches the SHA-256 stored when it was taken, are not in the zip but
are still listed in the manifest with the reason (``omitted``) and the ticket they
belong to — each remains on its ticket's page.  The cover says how many.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from elvwatch.exporters.reports.periods import Period
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.field_schema import PhotoRow
from elvwatch.tickets.field_work import stored_photo
from elvwatch.tickets.schema import TicketRow
from elvwatch.tickets.store import Store

# Photos in one package at most (a phone photo is 2–6 MB: some 30 of them); the package
# is held in memory while it is built and downloaded in one request.
MAX_BYTES = 150 * 1024 * 1024
FOLDER = "07-photos"
OVER_LIMIT = "over_limit"      # past MAX_BYTES
MISSING = "missing"            # the file is gone from the photo directory
CHANGED = "changed"            # the file no longer has the bytes stored for it
NO_DIRECTORY = "no_directory"  # the package was built without the photo directory
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}


@dataclass(frozen=True, slots=True)
class HandoverPhoto:
    ticket: str
    id: int
    file: str               # the stored file's name in the photo directory
    content_type: str
    size: int
    sha256: str
    at: float
    caption: str
    uploaded_by: str
    data: bytes | None = None       # in the package
    omitted: str | None = None      # why not: OVER_LIMIT, MISSING, CHANGED, NO_DIRECTORY

    @property
    def name(self) -> str:
        """The photo's name in the zip (ASCII, unique)."""
        return f"{FOLDER}/{self.ticket}-{self.id}.{_EXTENSIONS.get(self.content_type, 'bin')}"

    def manifest(self, timezone: str) -> dict[str, object]:
        from zoneinfo import ZoneInfo

        return {"ticket": self.ticket, "taken_at": datetime.fromtimestamp(
                    self.at, ZoneInfo(timezone)).isoformat(),
                "caption": self.caption, "uploaded_by": self.uploaded_by,
                "bytes": self.size, "sha256": self.sha256} | (
            {"name": self.name} if self.data is not None else {"omitted": self.omitted})


async def site_photos(store: Store, site: str, period: Period) -> list[HandoverPhoto]:
    """The photos of the site's tickets taken in ``period``, oldest first (not read yet)."""
    async with store.transaction("read the photos of a handover") as session:
        rows = await session.execute(
            select(PhotoRow, TicketRow.number).join(TicketRow, PhotoRow.ticket_id == TicketRow.id)
            .where(TicketRow.site == site,
                   PhotoRow.at >= datetime.fromtimestamp(period.start, UTC),
                   PhotoRow.at < datetime.fromtimestamp(period.end, UTC))
            .order_by(PhotoRow.at, PhotoRow.id))
        return [HandoverPhoto(number, p.id, p.file, p.content_type, p.bytes, p.sha256,
                              ts.epoch(p.at) or 0.0, p.caption, p.uploaded_by)
                for p, number in rows.all()]


def read_photos(photos: Iterable[HandoverPhoto], directory: Path | None,
                limit: int | None = None) -> tuple[HandoverPhoto, ...]:
    """The photos with their bytes while ``limit`` (:data:`MAX_BYTES`) lasts, the rest
    with the reason; a photo is read only if it fits (its stored size says so)."""
    out: list[HandoverPhoto] = []
    left = MAX_BYTES if limit is None else limit
    for photo in photos:
        if directory is None:
            out.append(replace(photo, omitted=NO_DIRECTORY))
            continue
        try:
            path = stored_photo(directory, photo.file)
            if not path.is_file():
                raise FileNotFoundError(path)
            if photo.size > left:
                out.append(replace(photo, omitted=OVER_LIMIT))
                continue
            data = path.read_bytes()
        except OSError:
            out.append(replace(photo, omitted=MISSING))
            continue
        if len(data) > left or hashlib.sha256(data).hexdigest() != photo.sha256:
            out.append(replace(photo, omitted=CHANGED if len(data) <= left else OVER_LIMIT))
            continue
        left -= len(data)
        out.append(replace(photo, data=data))
    return tuple(out)
