"""SDP (RFC 8866) as cameras send it in RTSP DESCRIBE answers: codec and resolution.

Resolution comes from, in order: ``a=framesize:PT W-H`` (Hikvision, Dahua and many
OEMs), ``a=x-dimensions:W,H`` (Axis), or the H.264 SPS in ``sprop-parameter-sets``
(decoded here: profile, chroma format, macroblock size, cropping).  H.265 resolution
needs ``a=framesize``/``x-dimensions``; its SPS is not decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

MAX_SDP = 65536


@dataclass(frozen=True, slots=True)
class MediaDescription:
    kind: str                  # video, audio, application
    codec: str                 # H264, H265, PCMA, … ("" when the SDP names none)
    width: int | None = None
    height: int | None = None
    control: str = ""


_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([\w.-]+)/", re.IGNORECASE)
_FRAMESIZE = re.compile(r"^a=framesize:\d+\s+(\d+)-(\d+)", re.IGNORECASE)
_XDIM = re.compile(r"^a=x-dimensions:\s*(\d+)\s*,\s*(\d+)", re.IGNORECASE)
_SPROP = re.compile(r"sprop-parameter-sets=([A-Za-z0-9+/=]+)", re.IGNORECASE)


def parse_sdp(text: str) -> list[MediaDescription]:
    """Every m= section; raises ValueError when there is none."""
    sections: list[list[str]] = []
    for raw in text[:MAX_SDP].splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    if not sections:
        raise ValueError("SDP has no media (m=) section")
    return [_media(lines) for lines in sections]


def _media(lines: list[str]) -> MediaDescription:
    kind = lines[0][2:].split(" ", 1)[0].lower()
    codec, control = "", ""
    width = height = None
    for line in lines[1:]:
        if (m := _RTPMAP.match(line)) and not codec:
            codec = m.group(2).upper()
        elif (m := _FRAMESIZE.match(line) or _XDIM.match(line)):
            width, height = int(m.group(1)), int(m.group(2))
        elif line.lower().startswith("a=control:"):
            control = line[10:].strip()
    if width is None and codec == "H264":
        for line in lines:
            if line.lower().startswith("a=fmtp:") and (m := _SPROP.search(line)):
                size = _sps_size(m.group(1).split(",")[0])
                if size:
                    width, height = size
    return MediaDescription(kind, codec, width, height, control)


def _sps_size(encoded: str) -> tuple[int, int] | None:
    try:
        nal = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        return h264_sps_size(nal)
    except (binascii.Error, ValueError, IndexError):
        return None


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_size(nal: bytes) -> tuple[int, int]:
    """(width, height) from an H.264 SPS NAL unit (ITU-T H.264 7.3.2.1.1)."""
    if not nal or nal[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    bits = _Bits(rbsp)
    profile = bits.u(8)
    bits.u(16)                      # constraint flags, level
    bits.ue()                       # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)
        bits.ue()
        bits.ue()
        bits.u(1)
        if bits.u(1):               # scaling matrices present
            for index in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()                       # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()                       # max_num_ref_frames
    bits.u(1)
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)
    crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.u(1) else (0, 0, 0, 0)
    sub_width = 2 if chroma in (1, 2) else 1
    sub_height = 2 if chroma == 1 else 1
    unit_x = 1 if chroma == 0 else sub_width
    unit_y = (2 - frame_mbs_only) * (1 if chroma == 0 else sub_height)
    width = width_mbs * 16 - (crop[0] + crop[1]) * unit_x
    height = (2 - frame_mbs_only) * height_units * 16 - (crop[2] + crop[3]) * unit_y
    if width <= 0 or height <= 0:
        raise ValueError("SPS gives no size")
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
