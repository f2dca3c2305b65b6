"""A small, strict BER codec for SNMP v1/v2c messages (RFC 1157, RFC 3416).

pysnmp's pyasn1 codec is general and pure Python: about 70 % of a GET check's CPU.
This one knows only what a v1/v2c message can hold and nothing else::

    Message ::= SEQUENCE { version INTEGER, community OCTET STRING, pdu PDU }
    PDU     ::= [0..3, 5..8] IMPLICIT SEQUENCE { request-id, error-status (or
                non-repeaters), error-index (or max-repetitions), SEQUENCE OF VarBind }
    VarBind ::= SEQUENCE { name OBJECT IDENTIFIER, value }

Decoding is for untrusted input: definite lengths only, every length checked against
the bytes that are really there (a huge length is an error, never an allocation),
every constructed value consumed exactly, integers within their type's range, OIDs
minimally encoded and bounded, unknown tags refused.  Every refusal is a ``BerError``
saying what was wrong and at which byte offset.

Values are ``(oid, tag, value)`` triples, so a decoded message re-encodes to the
same bytes: INTEGER/Counter32/Gauge32/TimeTicks/Counter64 → ``int``; OCTET STRING/
IpAddress/Opaque → ``bytes``; OBJECT IDENTIFIER → ``tuple[int, ...]``; NULL,
noSuchObject, noSuchInstance, endOfMibView → ``None``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from elvwatch.probes.base import ProbeConfigError

Oid = tuple[int, ...]
BerValue = int | bytes | Oid | None
VarBind = tuple[Oid, int, BerValue]

INTEGER, OCTET_STRING, NULL, OBJECT_ID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIME_TICKS, OPAQUE, COUNTER64 = (
    0x40, 0x41, 0x42, 0x43, 0x44, 0x46)
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GET_NEXT, RESPONSE, SET, GET_BULK, INFORM, TRAP_V2, REPORT = (
    0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8)
PDU_TYPES = frozenset((GET, GET_NEXT, RESPONSE, SET, GET_BULK, INFORM, TRAP_V2, REPORT))
VERSION_1, VERSION_2C = 0, 1

# Bounds: a UDP datagram cannot be larger; RFC 2578 caps OIDs at 128 arcs of 32 bits;
# a GETBULK of 100 repetitions x 40 columns stays below the varbind cap.
MAX_MESSAGE = 65_507
MAX_OID_ARCS = 128
MAX_VARBINDS = 4096
MAX_COMMUNITY = 255
_EMPTY = frozenset((NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW))
_UNSIGNED = {COUNTER32: 2**32 - 1, GAUGE32: 2**32 - 1, TIME_TICKS: 2**32 - 1,
             COUNTER64: 2**64 - 1}
_STRINGS = frozenset((OCTET_STRING, IP_ADDRESS, OPAQUE))
_INT32 = (-(2**31), 2**31 - 1)


class BerError(ValueError):
    """The bytes are not a well-formed SNMP v1/v2c message."""


@dataclass(frozen=True, slots=True)
class Message:
    version: int  # VERSION_1 or VERSION_2C
    community: bytes
    pdu: int  # GET, GET_NEXT, RESPONSE …
    request_id: int
    error_status: int  # GET_BULK: non-repeaters
    error_index: int  # GET_BULK: max-repetitions
    varbinds: tuple[VarBind, ...]

    def __repr__(self) -> str:  # the community is a secret
        return (f"Message(version={self.version}, pdu=0x{self.pdu:02x}, "
                f"request_id={self.request_id}, error_status={self.error_status}, "
                f"error_index={self.error_index}, varbinds={len(self.varbinds)})")


# -- encoding --------------------------------------------------------------------------

def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise BerError(f"length {n} too large for an SNMP message")


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(tag: int, value: int) -> bytes:
    # Minimal two's complement; unsigned types get a leading 0 when the top bit is set.
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return _tlv(tag, value.to_bytes(size, "big", signed=True))


@functools.lru_cache(maxsize=65536)  # profile OIDs repeat on every poll
def encode_oid(oid: Oid) -> bytes:
    if len(oid) < 2 or len(oid) > MAX_OID_ARCS or oid[0] > 2 or (oid[0] < 2 and oid[1] > 39):
        raise BerError(f"cannot encode OID {'.'.join(map(str, oid))}")
    body = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if not 0 <= arc < 2**32:
            raise BerError(f"OID arc {arc} out of range")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(OBJECT_ID, bytes(body))


@functools.lru_cache(maxsize=65536)
def _null_varbind(oid: Oid) -> bytes:
    return _tlv(SEQUENCE, encode_oid(oid) + b"\x05\x00")


def encode_value(tag: int, value: BerValue) -> bytes:
    if tag in _EMPTY:
        if value is not None:
            raise BerError(f"tag 0x{tag:02x} carries no value")
        return bytes((tag, 0))
    if tag == INTEGER or tag in _UNSIGNED:
        if not isinstance(value, int):
            raise BerError(f"tag 0x{tag:02x} needs an int")
        low, high = _INT32 if tag == INTEGER else (0, _UNSIGNED[tag])
        if not low <= value <= high:
            raise BerError(f"{value} out of range for tag 0x{tag:02x}")
        return _integer(tag, value)
    if tag in _STRINGS:
        if not isinstance(value, bytes) or (tag == IP_ADDRESS and len(value) != 4):
            raise BerError(f"tag 0x{tag:02x} needs bytes (IpAddress: 4)")
        return _tlv(tag, value)
    if tag == OBJECT_ID:
        if not isinstance(value, tuple):
            raise BerError("OBJECT IDENTIFIER needs a tuple")
        return encode_oid(value)
    raise BerError(f"cannot encode tag 0x{tag:02x}")


def encode_message(message: Message) -> bytes:
    """Any v1/v2c message (requests, and responses for test agents)."""
    binds = b"".join(
        _null_varbind(oid) if tag == NULL else _tlv(SEQUENCE, encode_oid(oid)
                                                    + encode_value(tag, value))
        for oid, tag, value in message.varbinds)
    pdu = (_integer(INTEGER, message.request_id) + _integer(INTEGER, message.error_status)
           + _integer(INTEGER, message.error_index) + _tlv(SEQUENCE, binds))
    data = _tlv(SEQUENCE, _integer(INTEGER, message.version)
                + _tlv(OCTET_STRING, message.community) + _tlv(message.pdu, pdu))
    if len(data) > MAX_MESSAGE:
        raise BerError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def encode_request(version: int, community: bytes, pdu: int, request_id: int,
                   oids: Sequence[Oid], non_repeaters: int = 0,
                   max_repetitions: int = 0) -> bytes:
    """A GET/GETNEXT/GETBULK request: every value NULL."""
    return encode_message(Message(version, community, pdu, request_id, non_repeaters,
                                  max_repetitions, tuple((o, NULL, None) for o in oids)))


# -- decoding --------------------------------------------------------------------------

def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; bounded by ``end``."""
    if pos + 2 > end:
        raise BerError(f"truncated at byte {pos}: no room for a tag and length")
    tag = data[pos]
    size = data[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0:
            raise BerError(f"indefinite length at byte {pos - 1} (not allowed in SNMP)")
        if count > 3:
            raise BerError(f"length of {count} bytes at byte {pos - 1} is too large")
        if pos + count > end:
            raise BerError(f"truncated length at byte {pos}")
        size = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + size > end:
        raise BerError(f"length {size} at byte {pos} runs past the data "
                       f"({end - pos} bytes left)")
    return tag, pos, pos + size


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    found, start, stop = _header(data, pos, end)
    if found != tag:
        raise BerError(f"{what}: expected tag 0x{tag:02x}, got 0x{found:02x} at byte {pos}")
    return start, stop


def _int_body(data: bytes, start: int, stop: int, what: str) -> int:
    if start == stop:
        raise BerError(f"{what}: empty integer at byte {start}")
    if stop - start > 9:
        raise BerError(f"{what}: integer of {stop - start} bytes at byte {start}")
    return int.from_bytes(data[start:stop], "big", signed=True)


def _int32(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, INTEGER, what)
    value = _int_body(data, start, stop, what)
    if not _INT32[0] <= value <= _INT32[1]:
        raise BerError(f"{what}: {value} is not a 32-bit integer")
    return value, stop


def _oid_body(data: bytes, start: int, stop: int) -> Oid:
    if start == stop:
        raise BerError(f"empty OBJECT IDENTIFIER at byte {start}")
    chunk = data[start:stop]
    if max(chunk) < 0x80:  # every arc fits one byte: the common case, done in C
        first = chunk[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        arcs = head + tuple(chunk[1:])
    else:
        values: list[int] = []
        value = 0
        fresh = True
        for byte in chunk:
            if fresh and byte == 0x80:
                raise BerError(f"OBJECT IDENTIFIER arc with a leading 0x80 at byte {start}")
            value = (value << 7) | (byte & 0x7F)
            fresh = not byte & 0x80
            if fresh:
                if value >= 2**32:
                    raise BerError(f"OBJECT IDENTIFIER arc {value} exceeds 32 bits")
                values.append(value)
                value = 0
        if not fresh:
            raise BerError(f"OBJECT IDENTIFIER truncated inside an arc at byte {start}")
        first = values[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        arcs = head + tuple(values[1:])
    if len(arcs) > MAX_OID_ARCS:
        raise BerError(f"OBJECT IDENTIFIER of {len(arcs)} arcs (at most {MAX_OID_ARCS})")
    return arcs


def _value(data: bytes, tag: int, start: int, stop: int) -> BerValue:
    if tag in _STRINGS:
        if tag == IP_ADDRESS and stop - start != 4:
            raise BerError(f"IpAddress of {stop - start} bytes at byte {start}")
        return data[start:stop]
    if tag == INTEGER or tag in _UNSIGNED:
        value = _int_body(data, start, stop, f"value tag 0x{tag:02x}")
        low, high = _INT32 if tag == INTEGER else (0, _UNSIGNED[tag])
        if not low <= value <= high:
            raise BerError(f"{value} out of range for tag 0x{tag:02x} at byte {start}")
        return value
    if tag == OBJECT_ID:
        return _oid_body(data, start, stop)
    if tag in _EMPTY:
        if stop != start:
            raise BerError(f"tag 0x{tag:02x} with {stop - start} content bytes at byte "
                           f"{start}")
        return None
    raise BerError(f"unknown value tag 0x{tag:02x} at byte {start - 2}")


def decode_message(data: bytes) -> Message:
    """Parse one datagram; anything but a well-formed v1/v2c message is a BerError."""
    end = len(data)
    if end > MAX_MESSAGE:
        raise BerError(f"datagram of {end} bytes exceeds {MAX_MESSAGE}")
    start, stop = _expect(data, 0, end, SEQUENCE, "message")
    if stop != end:
        raise BerError(f"{end - stop} bytes after the message")
    version, pos = _int32(data, start, stop, "version")
    if version not in (VERSION_1, VERSION_2C):
        raise BerError(f"SNMP version {version} is not v1/v2c")
    c_start, pos = _expect(data, pos, stop, OCTET_STRING, "community")
    if pos - c_start > MAX_COMMUNITY:
        raise BerError(f"community of {pos - c_start} bytes")
    community = data[c_start:pos]
    pdu, p_start, p_stop = _header(data, pos, stop)
    if pdu not in PDU_TYPES:
        raise BerError(f"unknown PDU tag 0x{pdu:02x} at byte {pos}")
    if p_stop != stop:
        raise BerError(f"{stop - p_stop} bytes after the PDU")
    request_id, pos = _int32(data, p_start, p_stop, "request-id")
    error_status, pos = _int32(data, pos, p_stop, "error-status")
    error_index, pos = _int32(data, pos, p_stop, "error-index")
    l_start, l_stop = _expect(data, pos, p_stop, SEQUENCE, "varbind list")
    if l_stop != p_stop:
        raise BerError(f"{p_stop - l_stop} bytes after the varbind list")
    binds: list[VarBind] = []
    pos = l_start
    while pos < l_stop:
        if len(binds) >= MAX_VARBINDS:
            raise BerError(f"more than {MAX_VARBINDS} varbinds")
        # Fast path (a GETBULK answer is hundreds of these): short-form lengths that
        # nest exactly.  Anything else takes the general path, which also reports.
        if pos + 4 <= l_stop and data[pos] == SEQUENCE and data[pos + 2] == OBJECT_ID:
            v_size, o_size = data[pos + 1], data[pos + 3]
            v_stop, o_stop = pos + 2 + v_size, pos + 4 + o_size
            if (v_size < 0x80 and o_size < 0x80 and v_stop <= l_stop
                    and o_stop + 2 <= v_stop and data[o_stop + 1] == v_stop - o_stop - 2):
                tag = data[o_stop]
                name = _oid_body(data, pos + 4, o_stop)
                if tag == OCTET_STRING:
                    binds.append((name, tag, data[o_stop + 2:v_stop]))
                else:
                    binds.append((name, tag, _value(data, tag, o_stop + 2, v_stop)))
                pos = v_stop
                continue
        v_start, v_stop = _expect(data, pos, l_stop, SEQUENCE, "varbind")
        o_start, o_stop = _expect(data, v_start, v_stop, OBJECT_ID, "varbind name")
        tag, x_start, x_stop = _header(data, o_stop, v_stop)
        if x_stop != v_stop:
            raise BerError(f"{v_stop - x_stop} bytes after the varbind value at byte "
                           f"{x_stop}")
        binds.append((_oid_body(data, o_start, o_stop), tag,
                      _value(data, tag, x_start, x_stop)))
        pos = v_stop
    return Message(version, community, pdu, request_id, error_status, error_index,
                   tuple(binds))


@functools.lru_cache(maxsize=65536)  # profile OIDs are parsed on every run
def parse_oid(text: str) -> Oid:
    try:
        return tuple(int(p) for p in text.strip().lstrip(".").split("."))
    except ValueError:
        raise ProbeConfigError("snmp", f"bad OID {text!r}") from None
