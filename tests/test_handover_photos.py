"""The handover package carries the ticket photos: each photo an engineer took on the
site's tickets in the period, as kept (without the phone's position), listed in the
manifest with its ticket, caption, who took it and when, and checked by its SHA-256.
Past the package's photo budget — or when a file is gone — a photo is listed with the
reason instead of included, and the cover says how many are left out."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from elvwatch.exporters.reports import handover_photos
from elvwatch.exporters.reports.handover import collect, handover_zip
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.field_work import FieldWork, PhotoFile
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from elvwatch.web import photos
from tests.test_photos import gps_of, phone_jpeg
from tests.test_reports import SITE_ZH
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault


async def take_photos(store: Store, clock: Clock, directory: Path, count: int
                      ) -> tuple[str, list[photos.CheckedPhoto]]:
    """A fault ticket with ``count`` photos uploaded as the page uploads them."""
    manager = TicketManager(store, lambda: {SITE: replace(TERMS, contract_start=None)}, clock)
    number = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0].ticket
    kept = []
    for n in range(count):
        clock.now = T0 + (n + 1) * HOUR
        photo = photos.check(phone_jpeg((320 + 16 * n, 240)))
        photos.save(directory, photo)
        await FieldWork(manager).add_photo(number, "王工 (wang)", PhotoFile(
            photo.file, photo.content_type, len(photo.data), photo.sha256, photo.width,
            photo.height), f"照片 {n + 1}")
        kept.append(photo)
    return number, kept


def unzip(data: bytes) -> tuple[dict[str, bytes], dict[str, object]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {name: z.read(name) for name in z.namelist()}
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()
                   if i.filename.startswith("07-photos/"))
    return files, json.loads(files.pop("manifest.json"))


async def test_the_handover_zip_holds_the_ticket_photos_listed_in_its_manifest(
        store: Store, clock: Clock, tmp_path: Path) -> None:
    number, kept = await take_photos(store, clock, tmp_path, 2)
    contents = await collect(store, SITE_ZH, date(2026, 3, 1), date(2026, 3, 31), T0 + 30 * HOUR,
                             photos_dir=tmp_path)
    files, manifest = unzip(handover_zip(contents, SITE_ZH, T0 + 30 * HOUR, pdf=False))
    listed = manifest["photos"]
    assert isinstance(listed, list) and [p["caption"] for p in listed] == ["照片 1", "照片 2"]
    for photo, entry in zip(kept, listed, strict=True):
        name = entry["name"]
        assert name.startswith(f"07-photos/{number}-") and name.endswith(".jpg")
        assert files[name] == photo.data and entry["sha256"] == photo.sha256
        assert entry["ticket"] == number and entry["uploaded_by"] == "王工 (wang)"
        assert entry["taken_at"].endswith("+08:00")
        assert gps_of(files[name]) == {}                    # kept without the position
    by_name = {f["name"]: f for f in manifest["files"]}      # type: ignore[index]
    assert {f for f in by_name if f.startswith("07-photos/")} == {p["name"] for p in listed}
    for name, entry in by_name.items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"]
    assert by_name[listed[0]["name"]]["title"] == "现场照片"
    assert manifest["counts"]["photos"] == 2 and manifest["counts"]["photos_omitted"] == 0  # type: ignore[index]
    cover = files["00-cover.html"].decode("utf-8")
    assert "现场照片" in cover and "07-photos/" in cover and "未放入移交包" not in cover


async def test_photos_past_the_budget_or_gone_are_listed_not_included(
        store: Store, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    number, kept = await take_photos(store, clock, tmp_path, 3)
    (tmp_path / kept[1].file).unlink()                       # the second is gone from disk
    # Room for the first photo and not for the third.
    monkeypatch.setattr(handover_photos, "MAX_BYTES", len(kept[0].data) + len(kept[2].data) - 1)
    contents = await collect(store, SITE_ZH, date(2026, 3, 1), date(2026, 3, 31), T0 + 30 * HOUR,
                             photos_dir=tmp_path)
    files, manifest = unzip(handover_zip(contents, SITE_ZH, T0 + 30 * HOUR, pdf=False))
    listed = manifest["photos"]
    assert isinstance(listed, list)
    assert [(p.get("name", "").startswith("07-photos/"), p.get("omitted")) for p in listed] == [
        (True, None), (False, "missing"), (False, "over_limit")]
    assert [n for n in files if n.startswith("07-photos/")] == [listed[0]["name"]]
    assert all(p["ticket"] == number for p in listed)
    assert manifest["counts"]["photos"] == 1 and manifest["counts"]["photos_omitted"] == 2  # type: ignore[index]
    assert "另有 2 张照片未放入移交包" in files["00-cover.html"].decode("utf-8")


async def test_a_photo_whose_file_changed_is_not_handed_over_as_the_one_taken(
        store: Store, clock: Clock, tmp_path: Path) -> None:
    _, kept = await take_photos(store, clock, tmp_path, 1)
    (tmp_path / kept[0].file).write_bytes(phone_jpeg((100, 100)))
    found = await handover_photos.site_photos(
        store, SITE, (await collect(store, SITE_ZH, date(2026, 3, 1), date(2026, 3, 31),
                                    T0)).period)
    (photo,) = handover_photos.read_photos(found, tmp_path)
    assert (photo.data, photo.omitted) == (None, "changed")
    (listed,) = handover_photos.read_photos(found, None)
    assert listed.omitted == "no_directory"
