"""Judge a camera snapshot: a decodable JPEG of the expected size, not uniform.

A covered lens, a dead sensor or an encoder showing "video loss" gives a frame whose
pixels are nearly all the same.  We decode at 1/8 scale (JPEG draft mode: cheap, and
enough for statistics), convert to 8-bit grey and look at the standard deviation:

* ``UNIFORM_STDDEV = 4.0`` — JPEG noise on a flat frame stays below ~2; a real scene,
  even a dark IR night scene, is above 10.  Below the threshold the image is uniform.
* ``BLACK_MEAN = 16.0`` — a uniform image darker than this is "black" (lens covered,
  video loss), otherwise "uniform" (lens pointed at a wall, a grey test frame).

Pillow is the decoder: "decodable" can only be proven by decoding, and writing a JPEG
decoder is not our job.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

UNIFORM_STDDEV = 4.0
BLACK_MEAN = 16.0
# A frame bigger than this is refused before decoding (decompression bombs).
MAX_PIXELS = 64_000_000


@dataclass(frozen=True, slots=True)
class SnapshotVerdict:
    ok: bool
    problem: str | None          # None, or why the snapshot is bad
    width: int = 0
    height: int = 0
    mean: float = 0.0
    stddev: float = 0.0


def judge_jpeg(data: bytes, expect_width: int | None = None,
               expect_height: int | None = None) -> SnapshotVerdict:
    from PIL import Image, ImageStat, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG":
                    return SnapshotVerdict(False, f"not a JPEG ({image.format or 'unknown'})")
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return SnapshotVerdict(False, f"image too large ({width}x{height})",
                                           width, height)
                image.draft("L", (max(width // 8, 1), max(height // 8, 1)))
                stats = ImageStat.Stat(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        return SnapshotVerdict(False, f"not a decodable image: {type(exc).__name__}")
    mean, stddev = float(stats.mean[0]), float(stats.stddev[0])
    if (expect_width and width != expect_width) or (expect_height and height != expect_height):
        return SnapshotVerdict(False, f"size {width}x{height}, expected "
                               f"{expect_width or '?'}x{expect_height or '?'}",
                               width, height, mean, stddev)
    if stddev < UNIFORM_STDDEV:
        kind = "black" if mean < BLACK_MEAN else "uniform"
        return SnapshotVerdict(False, f"{kind} image (mean {mean:.0f}, stddev {stddev:.1f})",
                               width, height, mean, stddev)
    return SnapshotVerdict(True, None, width, height, mean, stddev)
