"""Photos taken on site: an upload from a phone, checked, and kept beside the store.

An upload is untrusted: it is read in chunks and refused past :data:`MAX_BYTES` before
it is all in memory; it must start like a JPEG or a PNG *and* decode as one (Pillow,
with its decompression-bomb guard and a pixel bound of our own, checked from the
header before any pixel is decoded); its name is ours (the SHA-256 of the kept bytes),
never the phone's, so a name cannot climb out of the photo directory or overwrite
another photo.  It is written to a temporary file and renamed (a crash leaves no half
photo under a real name), readable by the daemon's user only.  Served back with its
checked type, ``nosniff`` and a sandboxing CSP.

What is kept is not what the phone sent: a phone writes the engineer's position (EXIF
GPS), the phone's make and serial, XMP and comments into its photos, and the photos
reach the client's handover package.  The photo is decoded and encoded again by
Pillow with none of it — only the pixels, turned upright as the EXIF orientation said,
and the colour profile.  Encoding again rather than cutting metadata segments out of
the JPEG byte stream: it covers PNG's text and eXIf chunks alike, leaves no trailer
after the image's end (a file that is both a JPEG and something else), and turns the
picture upright, which a phone leaves to the EXIF tag that goes.  A JPEG is encoded
with its own quantisation tables and chroma subsampling, so it loses nothing visible.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web
from PIL import Image, ImageOps, JpegImagePlugin

from elvwatch.tickets.field_work import stored_photo

MAX_BYTES = 10 * 1024 * 1024          # a phone's JPEG is 2–6 MB
MAX_PIXELS = 60_000_000               # 60 MP: more than any phone camera takes
# Photos decoded at once: a 60 MP photo is 180 MB of pixels while it is encoded again.
DECODING = threading.BoundedSemaphore(2)
MAX_CAPTION = 500
CHUNK = 64 * 1024
TYPES = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))


class PhotoRefused(ValueError):
    """Not a photo we keep; ``reason`` is the page's message key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    caption: str


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str

    @property
    def file(self) -> str:
        return f"{self.sha256[:40]}.{self.extension}"


async def read_upload(request: web.Request, field: str = "photo") -> Upload:
    """The photo and its caption from a multipart form, bounded while it streams in."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise PhotoRefused("photo_not_image", "not a multipart form") from exc
    data: bytes | None = None
    caption = ""
    for _ in range(8):   # the form has two fields; a few more are ignored, not looped on
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == field:
            data = await _bounded(part)
        elif part.name == "caption":
            caption = (await part.read_chunk(MAX_CAPTION * 4)).decode("utf-8", "replace")
        else:
            await part.release()
    if not data:
        raise PhotoRefused("photo_not_image", "no photo in the form")
    return Upload(data, caption.strip()[:MAX_CAPTION])


async def _bounded(part: BodyPartReader) -> bytes:
    out = bytearray()
    while True:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > MAX_BYTES:
            raise PhotoRefused("photo_too_big", f"more than {MAX_BYTES} bytes")


def check(data: bytes) -> CheckedPhoto:
    """The photo as kept — upright, without its metadata — or PhotoRefused: it must be a
    JPEG or PNG by its first bytes and by decoding, within :data:`MAX_PIXELS`."""
    kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if kind is None:
        raise PhotoRefused("photo_not_image", "neither JPEG nor PNG")
    try:
        with warnings.catch_warnings(), DECODING:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != kind:
                    raise PhotoRefused("photo_not_image", f"{kind} header, {image.format} body")
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise PhotoRefused("photo_too_big", f"{width}x{height} pixels")
                kept = _without_metadata(image, kind)
                out = _encode(kept, image, kind)
    except PhotoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRefused("photo_too_big", f"more than {MAX_PIXELS} pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoRefused("photo_not_image", f"does not decode: {exc}") from exc
    content_type, extension = TYPES[kind]
    width, height = kept.size
    return CheckedPhoto(out, content_type, extension, width, height,
                        hashlib.sha256(out).hexdigest())


def _without_metadata(image: Image.Image, kind: str) -> Image.Image:
    """The decoded pixels, upright, with nothing of the file's metadata but PNG
    transparency (which is part of the picture)."""
    image.load()
    upright = ImageOps.exif_transpose(image) or image.copy()
    transparency = image.info.get("transparency") if kind == "PNG" else None
    upright.info = {} if transparency is None else {"transparency": transparency}
    return upright


def _encode(kept: Image.Image, original: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    icc = original.info.get("icc_profile")
    colour = {"icc_profile": icc} if isinstance(icc, bytes) and icc else {}
    if kind == "JPEG":
        sampling = JpegImagePlugin.get_sampling(original)
        quantisation = getattr(original, "quantization", None)
        kept.save(out, "JPEG", optimize=True, **colour,
                  **({"qtables": quantisation} if quantisation else {"quality": 90}),
                  **({"subsampling": sampling} if sampling >= 0 else {}))
    else:
        kept.save(out, "PNG", optimize=True, **colour)
    return out.getvalue()


def save(directory: Path, photo: CheckedPhoto) -> Path:
    """Write the photo under its own name (the same photo twice is one file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    target = directory / photo.file
    if target.exists():
        return target
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(photo.data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o640)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load(directory: Path, file: str) -> bytes:
    """A stored photo's bytes; ``file`` comes from the store, checked all the same."""
    return stored_photo(directory, file).read_bytes()
