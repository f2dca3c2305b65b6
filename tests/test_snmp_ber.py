"""The v1/v2c BER codec: round trips, agreement with pyasn1 (pysnmp's codec, an
independent implementation), and refusal of malformed input with a BerError."""

from __future__ import annotations

import random
import warnings

import pytest

from elvwatch.probes import snmp_ber as ber

with warnings.catch_warnings():  # pysnmp's pysmi deprecations (see probes.snmp_session)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyasn1.codec.ber import decoder as pyasn1_decoder
    from pyasn1.codec.ber import encoder as pyasn1_encoder
    from pysnmp.proto import api

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
EVERY_TYPE: tuple[ber.VarBind, ...] = (
    (SYS_DESCR, ber.OCTET_STRING, b"Linux sw1 \xff\x00 binary"),
    ((1, 3, 6, 1, 2, 1, 1, 2, 0), ber.OBJECT_ID, (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)),
    ((1, 3, 6, 1, 2, 1, 1, 3, 0), ber.TIME_TICKS, 2**32 - 1),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 3), ber.INTEGER, -(2**31)),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 14, 3), ber.COUNTER32, 2**31),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15, 3), ber.GAUGE32, 1000),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 3), ber.COUNTER64, 2**64 - 1),
    ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), ber.IP_ADDRESS, b"\x0a\x00\x00\x01"),
    ((1, 3, 6, 1, 4, 1, 2**32 - 1, 300), ber.OPAQUE, b"\x9f\x78\x04\x42\xf6\x00\x00"),
    ((2, 999, 1), ber.NULL, None),
    ((1, 3, 6, 1, 9, 9), ber.NO_SUCH_OBJECT, None),
    ((1, 3, 6, 1, 9, 10), ber.NO_SUCH_INSTANCE, None),
    ((1, 3, 6, 1, 9, 11), ber.END_OF_MIB_VIEW, None),
)


def response(varbinds: tuple[ber.VarBind, ...] = EVERY_TYPE, request_id: int = 77,
             version: int = ber.VERSION_2C) -> ber.Message:
    return ber.Message(version, b"public", ber.RESPONSE, request_id, 0, 0, varbinds)


def test_every_value_type_round_trips_byte_for_byte() -> None:
    message = response()
    data = ber.encode_message(message)
    assert ber.decode_message(data) == message
    assert ber.encode_message(ber.decode_message(data)) == data


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, -1, -128, -129, 2**31 - 1,
                                   -(2**31)])
def test_integer_edges_round_trip_minimally(value: int) -> None:
    message = response(((SYS_DESCR, ber.INTEGER, value),), request_id=value)
    data = ber.encode_message(message)
    assert ber.decode_message(data) == message
    # pyasn1 reads our bytes as the same integer (it encodes some negatives with a
    # redundant 0xff byte, so bytes are compared for non-negatives only).
    ours = ber.encode_value(ber.INTEGER, value)
    integer = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].Integer
    assert int(pyasn1_decoder.decode(ours, asn1Spec=integer())[0]) == value
    if value >= 0:
        assert ours == pyasn1_encoder.encode(integer(value))


def _pysnmp_message(pdu_type: str, varbinds: list[tuple[ber.Oid, object]],
                    version: int = api.SNMP_VERSION_2C) -> bytes:
    mod = api.PROTOCOL_MODULES[version]
    pdu = getattr(mod, pdu_type)()
    mod.apiPDU.set_defaults(pdu)
    mod.apiPDU.set_request_id(pdu, 4242)
    mod.apiPDU.set_varbinds(pdu, varbinds)
    msg = mod.Message()
    mod.apiMessage.set_defaults(msg)
    mod.apiMessage.set_community(msg, "public")
    mod.apiMessage.set_pdu(msg, pdu)
    return bytes(pyasn1_encoder.encode(msg))


@pytest.mark.parametrize(("version", "ours"), [(api.SNMP_VERSION_1, ber.VERSION_1),
                                               (api.SNMP_VERSION_2C, ber.VERSION_2C)])
def test_get_request_is_byte_identical_to_pysnmp(version: int, ours: int) -> None:
    oids = [SYS_DESCR, (1, 3, 6, 1, 4, 1, 39165, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 3, 0)]
    null = api.PROTOCOL_MODULES[version].Null("")
    theirs = _pysnmp_message("GetRequestPDU", [(o, null) for o in oids], version)
    assert ber.encode_request(ours, b"public", ber.GET, 4242, oids) == theirs


def test_decodes_a_pysnmp_encoded_response_with_every_type() -> None:
    mod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    data = _pysnmp_message("ResponsePDU", [
        (SYS_DESCR, mod.OctetString(b"sw1")),
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), mod.TimeTicks(123456)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 14, 1), mod.Counter32(4294967295)),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), mod.Counter64(18446744073709551615)),
        ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1), mod.IpAddress("192.168.1.20")),
        ((1, 3, 6, 1, 2, 1, 1, 2, 0), mod.ObjectIdentifier((1, 3, 6, 1, 4, 1, 50001, 2))),
        ((1, 3, 6, 1, 9), mod.NoSuchInstance("")),
        ((1, 3, 6, 1, 10), mod.EndOfMibView("")),
    ])
    message = ber.decode_message(data)
    assert (message.pdu, message.request_id, message.community) == (ber.RESPONSE, 4242,
                                                                      b"public")
    assert [(tag, value) for _, tag, value in message.varbinds] == [
        (ber.OCTET_STRING, b"sw1"), (ber.TIME_TICKS, 123456),
        (ber.COUNTER32, 4294967295), (ber.COUNTER64, 18446744073709551615),
        (ber.IP_ADDRESS, bytes([192, 168, 1, 20])),
        (ber.OBJECT_ID, (1, 3, 6, 1, 4, 1, 50001, 2)),
        (ber.NO_SUCH_INSTANCE, None), (ber.END_OF_MIB_VIEW, None)]


def test_get_bulk_carries_non_repeaters_and_max_repetitions() -> None:
    data = ber.encode_request(ber.VERSION_2C, b"c", ber.GET_BULK, 9,
                              [(1, 3, 6, 1, 2, 1, 2, 2, 1, 8)], 0, 25)
    message = ber.decode_message(data)
    assert (message.pdu, message.error_status, message.error_index) == (ber.GET_BULK, 0, 25)
    theirs, _ = pyasn1_decoder.decode(data, asn1Spec=api.PROTOCOL_MODULES[
        api.SNMP_VERSION_2C].Message())
    assert int(theirs["data"]["get-bulk-request"]["max-repetitions"]) == 25


def test_long_messages_use_long_form_lengths() -> None:
    binds = tuple(((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, n), ber.OCTET_STRING, b"x" * 300)
                  for n in range(1, 120))
    data = ber.encode_message(response(binds))
    assert data[:2] == b"\x30\x82"
    assert ber.decode_message(data).varbinds == binds


def test_message_repr_keeps_the_community_out() -> None:
    message = ber.Message(1, b"s3cret", ber.GET, 1, 0, 0, ())
    assert "s3cret" not in repr(message)


GOOD = ber.encode_message(response())


@pytest.mark.parametrize("cut", range(0, len(GOOD), 7))
def test_every_truncation_is_refused(cut: int) -> None:
    with pytest.raises(ber.BerError):
        ber.decode_message(GOOD[:cut])


OID3 = b"\x06\x03\x2b\x06\x01"  # 1.3.6.1
VARBIND = b"\x30\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00\x05\x00"  # sysDescr NULL


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + ber._length(len(body)) + body


def _wrap(varbinds: bytes, version: bytes = b"\x02\x01\x01", pdu: int = 0xA2) -> bytes:
    body = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + tlv(0x30, varbinds)
    return tlv(0x30, version + b"\x04\x01c" + tlv(pdu, body))


def _bind(value: bytes, name: bytes = OID3) -> bytes:
    return tlv(0x30, name + value)


_, _GOOD_START, _ = ber._header(GOOD, 0, len(GOOD))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated"),
    (GOOD + b"\x00", "bytes after the message"),
    (b"\x30\x82\xff\xff" + GOOD[_GOOD_START:], "runs past the data"),
    (b"\x30\x84\xff\xff\xff\xff" + GOOD[_GOOD_START:], "4 bytes .* too large"),
    (b"\x30\x80" + GOOD[_GOOD_START:], "indefinite length"),
    (b"\x31" + GOOD[1:], "message: expected tag 0x30"),
    (_wrap(VARBIND + b"\x04\x01x"), "varbind: expected tag 0x30"),
    (_wrap(VARBIND, version=b"\x02\x01\x03"), "version 3"),
    (_wrap(VARBIND, version=b"\x02\x00"), "empty integer"),
    (_wrap(VARBIND, pdu=0xA4), "unknown PDU tag 0xa4"),
    (_wrap(b"\x30\x0d" + VARBIND[2:]), "runs past"),
    (_wrap(b"\x30\x0a" + VARBIND[2:12]), "no room for a tag"),
    (_wrap(_bind(b"\x47\x00")), "unknown value tag 0x47"),
    (_wrap(_bind(b"\x05\x00", name=b"\x06\x02\x2b\x80")), "leading 0x80"),
    (_wrap(_bind(b"\x05\x00", name=b"\x06\x02\x2b\x81")), "truncated inside"),
    (_wrap(_bind(b"\x05\x00", name=b"\x06\x00")), "empty OBJECT IDENTIFIER"),
    (_wrap(_bind(b"\x06\x07\x2b\x8f\xff\xff\xff\xff\x7f")), "exceeds 32 bits"),
    (_wrap(_bind(b"\x40\x05\x01\x02\x03\x04\x05")), "IpAddress of 5"),
    (_wrap(_bind(b"\x41\x01\xff")), "-1 out of range"),
    (_wrap(_bind(b"\x02\x05\x00\x80\x00\x00\x00")), "2147483648 out of range"),
    (_wrap(_bind(b"\x46\x0c" + b"\x01" * 12)), "integer of 12 bytes"),
    (_wrap(_bind(b"\x05\x01\x00")), "1 content bytes"),
    (_wrap(_bind(b"\x05\x00\x05\x00")), "bytes after the varbind value"),
])
def test_malformed_input_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ber.BerError, match=message):
        ber.decode_message(data)


def test_oid_longer_than_128_arcs_is_refused() -> None:
    name = tlv(0x06, b"\x2b" + b"\x01" * 130)
    with pytest.raises(ber.BerError, match="132 arcs"):
        ber.decode_message(_wrap(_bind(b"\x05\x00", name=name)))
    with pytest.raises(ber.BerError):
        ber.encode_oid((1, 3, *([1] * 130)))


def test_too_many_varbinds_are_refused() -> None:
    data = _wrap(_bind(b"\x05\x00") * (ber.MAX_VARBINDS + 1))
    with pytest.raises(ber.BerError, match="more than 4096 varbinds"):
        ber.decode_message(data)


def test_random_corruption_decodes_or_raises_ber_error_only() -> None:
    rng = random.Random(6)
    decoded = 0
    for _ in range(3000):  # bounded: ~0.2 s
        data = bytearray(GOOD)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            ber.decode_message(bytes(data))
            decoded += 1
        except ber.BerError:
            pass
    assert decoded < 3000  # corruption is noticed (most of the time)


def test_encoder_refuses_values_that_do_not_fit_their_type() -> None:
    for tag, value in [(ber.COUNTER32, -1), (ber.COUNTER32, 2**32), (ber.INTEGER, 2**31),
                       (ber.IP_ADDRESS, b"\x01\x02"), (ber.NULL, 0),
                       (ber.OBJECT_ID, (1, 3, 2**32))]:
        with pytest.raises(ber.BerError):
            ber.encode_value(tag, value)
    with pytest.raises(ber.BerError):
        ber.encode_oid((3, 1))
