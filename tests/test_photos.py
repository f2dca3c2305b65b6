"""Photos from engineers' phones are kept without what the phone wrote into them: real
JPEG and PNG files, built here with Pillow the way phones write them (EXIF with the
GPS position, the phone's make and serial, XMP, comments, PNG text chunks), go in;
what is kept decodes to the same picture, upright, and carries none of it.  Image
bombs are refused from their header before a pixel is decoded, non-images with the
page's message."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from elvwatch.web import photos
from elvwatch.web.page_text import text

LATITUDE = (31.0, 14.0, 2.5)       # 31°14'2.5" N, 121°28'30" E
LONGITUDE = (121.0, 28.0, 30.0)
SECRETS = (b"LOCATION-XMP", b"engineer's note", b"SN-PHONE-0042", b"PhoneMaker")


def phone_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.BodySerialNumber] = "SN-PHONE-0042"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: LATITUDE,
                ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: LONGITUDE})
    return exif


def phone_jpeg(size: tuple[int, int] = (320, 240), orientation: int = 1) -> bytes:
    """A JPEG as a phone writes it: EXIF with GPS, XMP and a comment."""
    picture = Image.new("RGB", size, (40, 120, 200))
    picture.paste((250, 30, 30), (0, 0, size[0] // 4, size[1] // 4))   # a red corner
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=88, exif=phone_exif(orientation),
                 xmp=b"<x:xmpmeta><exif:GPSLatitude>LOCATION-XMP</exif:GPSLatitude>"
                     b"</x:xmpmeta>", comment=b"engineer's note")
    return out.getvalue()


def gps_of(data: bytes) -> dict[int, object]:
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.getexif().get_ifd(ExifTags.IFD.GPSInfo))


def test_a_phone_jpeg_is_kept_without_its_gps_exif_xmp_and_comment() -> None:
    sent = phone_jpeg()
    assert gps_of(sent)[ExifTags.GPS.GPSLatitude] == LATITUDE   # the fixture carries it
    assert all(secret in sent for secret in SECRETS[:2])
    kept = photos.check(sent)
    assert gps_of(kept.data) == {}
    with Image.open(io.BytesIO(kept.data)) as image:
        assert image.format == "JPEG" and dict(image.getexif()) == {}
        assert not {"exif", "xmp", "comment"} & image.info.keys()
        assert image.size == (320, 240) == (kept.width, kept.height)
        red, _, blue = image.getpixel((10, 10))                # type: ignore[misc]
        assert red > 200 and blue < 80                         # the same picture
    for secret in (*SECRETS, b"Exif\x00\x00", b"http://ns.adobe.com/xap/1.0/"):
        assert secret not in kept.data, secret
    assert (kept.content_type, kept.file) == ("image/jpeg", f"{kept.sha256[:40]}.jpg")


def test_a_photo_taken_sideways_is_kept_upright() -> None:
    kept = photos.check(phone_jpeg((320, 240), orientation=6))   # rotate 90° clockwise
    assert (kept.width, kept.height) == (240, 320)
    with Image.open(io.BytesIO(kept.data)) as image:
        red, _, _ = image.getpixel((image.width - 10, 10))      # type: ignore[misc]
        assert red > 200                # the red corner turned to the top right


def test_a_png_is_kept_without_its_text_and_exif_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "engineer's note")
    info.add_itxt("XML:com.adobe.xmp", "LOCATION-XMP", zip=True)
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(out, "PNG", pnginfo=info,
                                                   exif=phone_exif())
    assert b"tEXt" in out.getvalue() and b"eXIf" in out.getvalue()
    kept = photos.check(out.getvalue())
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", *SECRETS):
        assert chunk not in kept.data, chunk
    with Image.open(io.BytesIO(kept.data)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (64, 64))
        assert image.getpixel((1, 1)) == (0, 0, 0, 0)          # transparency kept


def test_what_follows_the_image_is_not_kept() -> None:
    kept = photos.check(phone_jpeg() + b"<script>alert(1)</script>PK\x03\x04")
    assert b"<script>" not in kept.data and b"PK\x03\x04" not in kept.data


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width``×``height`` with a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (60_000, 60_000),
                                               (1, 2**31 - 1)])
def test_an_image_bomb_is_refused_from_its_header(width: int, height: int) -> None:
    data = _png_claiming(width, height)
    assert len(data) < 200
    with pytest.raises(photos.PhotoRefused) as refused:
        photos.check(data)
    assert refused.value.reason == "photo_too_big"
    assert text("zh-CN", "photo_too_big", mb=10) == "照片太大（最大 10 MB）。"


@pytest.mark.parametrize(("data", "detail"), [
    (b"<svg onload=alert(1)></svg>", "neither JPEG nor PNG"),
    (b"GIF89a" + b"\0" * 64, "neither JPEG nor PNG"),
    (b"\xff\xd8\xff" + b"not really a jpeg", "does not decode"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "does not decode"),
])
def test_a_file_that_is_not_a_photo_is_refused_with_the_pages_message(
        data: bytes, detail: str) -> None:
    with pytest.raises(photos.PhotoRefused) as refused:
        photos.check(data)
    assert refused.value.reason == "photo_not_image" and detail in str(refused.value)
    assert text("zh-CN", refused.value.reason) == "只能上传 JPEG 或 PNG 照片。"
    assert text("en", refused.value.reason) == "Only JPEG or PNG photos can be uploaded."
