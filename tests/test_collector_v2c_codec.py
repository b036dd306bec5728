"""Differential tests of the lean v1/v2c BER codec against pysnmp/pyasn1, the library of record.

Both ways, across every SNMP value type: messages encoded by `snmp_ber` must decode in pyasn1 to
the same values (read through `snmp_codec.to_varbind`, the mapping the pysnmp codec uses), and
messages encoded by pyasn1 must decode in `snmp_ber` to the same `Varbind`s. Malformed input
(truncations, bad lengths, wrong tags, random noise) must raise `BerError` and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v1, v2c

from monitor.collectors import snmp_ber
from monitor.collectors.convert import Varbind
from monitor.collectors.snmp_codec import to_varbind

U32, U64 = 2**32 - 1, 2**64 - 1
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def oids(draw: st.DrawFn) -> str:
    """Dotted OIDs as X.690 allows them (first arc 0-2, second < 40 under 0 and 1)."""
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39 if first < 2 else 2**32))
    rest = draw(st.lists(st.integers(0, U32), max_size=16))
    return ".".join(map(str, (first, second, *rest)))


_SIMPLE = {"Null": v2c.Null, "noSuchObject": v2c.NoSuchObject, "noSuchInstance": v2c.NoSuchInstance,
           "endOfMibView": v2c.EndOfMibView}  # fmt: skip
_NUMBERS = {"Integer32": (v2c.Integer32, -(2**31), 2**31 - 1), "Counter32": (v2c.Counter32, 0, U32),
            "Gauge32": (v2c.Gauge32, 0, U32), "TimeTicks": (v2c.TimeTicks, 0, U32),
            "Counter64": (v2c.Counter64, 0, U64)}  # fmt: skip
_OCTETS = {"OctetString": v2c.OctetString, "Opaque": v2c.Opaque}


def values() -> st.SearchStrategy[tuple[str, int | bytes | None]]:
    """(kind, value) for every SNMP value type, binary strings included."""
    choices: list[st.SearchStrategy[tuple[str, int | bytes | None]]] = [
        st.just((kind, None)) for kind in _SIMPLE
    ]
    choices += [st.tuples(st.just(k), st.integers(lo, hi)) for k, (_, lo, hi) in _NUMBERS.items()]
    choices += [st.tuples(st.just(k), st.binary(max_size=300)) for k in _OCTETS]
    choices.append(st.tuples(st.just("IpAddress"), st.binary(min_size=4, max_size=4)))
    choices.append(st.tuples(st.just("ObjectIdentifier"), oids().map(str.encode)))
    return st.one_of(choices)


def varbinds(max_size: int = 20) -> st.SearchStrategy[list[Varbind]]:
    """Varbind lists mixing every value type."""
    pair = st.tuples(oids(), values())
    return st.lists(pair, max_size=max_size).map(
        lambda items: [Varbind(oid, kind, value) for oid, (kind, value) in items]
    )


def pysnmp_value(vb: Varbind) -> Any:
    """The pysnmp object for one of our varbinds."""
    if vb.kind in _SIMPLE:
        return _SIMPLE[vb.kind]("")
    if vb.kind in _NUMBERS:
        return _NUMBERS[vb.kind][0](vb.value)
    if vb.kind in _OCTETS:
        return _OCTETS[vb.kind](vb.value)
    if vb.kind == "IpAddress":
        return v2c.IpAddress(vb.value)
    assert vb.kind == "ObjectIdentifier"
    assert isinstance(vb.value, bytes)
    return v2c.ObjectIdentifier(vb.value.decode())


def pysnmp_message(
    tag: int, community: bytes, request_id: int, a: int, b: int, binds: list[Varbind]
) -> bytes:
    """The same message built and BER-encoded by pysnmp/pyasn1."""
    pdu_class = {
        snmp_ber.GET: v2c.GetRequestPDU,
        snmp_ber.GET_NEXT: v2c.GetNextRequestPDU,
        snmp_ber.GET_BULK: v2c.GetBulkRequestPDU,
        snmp_ber.RESPONSE: v2c.ResponsePDU,
    }
    pdu = pdu_class[tag]()  # fmt: skip
    api = v2c.apiBulkPDU if tag == snmp_ber.GET_BULK else v2c.apiPDU
    api.set_defaults(pdu)
    api.set_request_id(pdu, request_id)
    if tag == snmp_ber.GET_BULK:
        v2c.apiBulkPDU.set_non_repeaters(pdu, a)
        v2c.apiBulkPDU.set_max_repetitions(pdu, b)
    else:
        v2c.apiPDU.set_error_status(pdu, a)
        v2c.apiPDU.set_error_index(pdu, b)
    api.set_varbinds(pdu, [(vb.oid, pysnmp_value(vb)) for vb in binds])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def pysnmp_decode(data: bytes) -> tuple[Any, Any]:
    """(message, pdu) as pyasn1 decodes them; the whole datagram must be consumed."""
    message, rest = decoder.decode(data, asn1Spec=v2c.Message())
    assert not rest
    return message, v2c.apiMessage.get_pdu(message)


request_ids = st.integers(-(2**31), 2**31 - 1)
small = st.integers(0, 2**31 - 1)
communities = st.binary(max_size=40)


@FAST
@given(varbinds(), communities, request_ids, st.integers(0, 18), small)
def test_our_response_decodes_in_pysnmp_to_the_same_values(binds, community, request_id, e, i):
    data = snmp_ber.encode_message(
        snmp_ber.Message(snmp_ber.V2C, community, snmp_ber.RESPONSE, request_id, e, i, binds)
    )
    message, pdu = pysnmp_decode(data)
    assert int(v2c.apiMessage.get_version(message)) == snmp_ber.V2C
    assert bytes(v2c.apiMessage.get_community(message)) == community
    assert pdu.isSameTypeWith(v2c.ResponsePDU())
    assert int(v2c.apiPDU.get_request_id(pdu)) == request_id
    # Raw components: pysnmp's getters check the index against the list, we test the codec.
    assert int(pdu.getComponentByPosition(1)) == e
    assert int(pdu.getComponentByPosition(2)) == i
    theirs = [to_varbind(str(name), value) for name, value in v2c.apiPDU.get_varbinds(pdu)]
    assert theirs == binds


@FAST
@given(varbinds(), communities, request_ids, st.integers(0, 18), small)
def test_pysnmp_response_decodes_in_ours_to_the_same_values(binds, community, request_id, e, i):
    data = pysnmp_message(snmp_ber.RESPONSE, community, request_id, e, i, binds)
    ours = snmp_ber.decode_message(data)
    assert ours == snmp_ber.Message(
        snmp_ber.V2C, community, snmp_ber.RESPONSE, request_id, e, i, binds
    )
    # And what pysnmp reads back from its own bytes is what we read.
    _, pdu = pysnmp_decode(data)
    assert [to_varbind(str(n), v) for n, v in v2c.apiPDU.get_varbinds(pdu)] == ours.varbinds
    # Not byte for byte: pyasn1 spends two octets on some negative numbers (-128), we one.
    assert snmp_ber.decode_message(snmp_ber.encode_message(ours)) == ours


@FAST
@given(
    st.sampled_from([snmp_ber.GET, snmp_ber.GET_NEXT, snmp_ber.GET_BULK]),
    st.lists(oids(), min_size=1, max_size=40),
    communities,
    request_ids,
    small,
    small,
)
def test_requests_agree_both_ways(tag, names, community, request_id, a, b):
    a, b = (a, b) if tag == snmp_ber.GET_BULK else (0, 0)
    ours = snmp_ber.encode_request(snmp_ber.V2C, community, tag, request_id, names, a, b)
    _, pdu = pysnmp_decode(ours)
    api = v2c.apiBulkPDU if tag == snmp_ber.GET_BULK else v2c.apiPDU
    assert pdu.tagSet[0][2] == tag & 0x1F
    assert int(api.get_request_id(pdu)) == request_id
    if tag == snmp_ber.GET_BULK:
        assert int(v2c.apiBulkPDU.get_non_repeaters(pdu)) == a
        assert int(v2c.apiBulkPDU.get_max_repetitions(pdu)) == b
    got = api.get_varbinds(pdu)
    assert [str(name) for name, _ in got] == names
    assert all(to_varbind("x", value).kind == "Null" for _, value in got)

    theirs = pysnmp_message(tag, community, request_id, a, b, [Varbind(n, "Null") for n in names])
    decoded = snmp_ber.decode_message(theirs)
    assert [vb.oid for vb in decoded.varbinds] == names
    assert (decoded.tag, decoded.request_id, decoded.error_status, decoded.error_index) == (
        tag, request_id, a, b,
    )  # fmt: skip


@FAST
@given(st.lists(oids(), min_size=1, max_size=10), communities, small)
def test_v1_get_agrees_with_pysnmp_v1(names, community, request_id):
    ours = snmp_ber.encode_request(snmp_ber.V1, community, snmp_ber.GET, request_id, names)
    message, rest = decoder.decode(ours, asn1Spec=v1.Message())
    assert not rest
    assert int(v1.apiMessage.get_version(message)) == snmp_ber.V1
    pdu = v1.apiMessage.get_pdu(message)
    assert [str(name) for name, _ in v1.apiPDU.get_varbinds(pdu)] == names
    assert snmp_ber.decode_message(ours).version == snmp_ber.V1


# --- malformed input -------------------------------------------------------------------------


def _decodes_or_ber_error(data: bytes) -> snmp_ber.Message | None:
    try:
        return snmp_ber.decode_message(data)
    except snmp_ber.BerError:
        return None


@FAST
@given(varbinds(max_size=8), communities, request_ids, st.data())
def test_every_truncation_is_a_ber_error(binds, community, request_id, data):
    whole = pysnmp_message(snmp_ber.RESPONSE, community, request_id, 0, 0, binds)
    cut = data.draw(st.integers(0, len(whole) - 1))
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_message(whole[:cut])


@FAST
@given(varbinds(max_size=8), communities, request_ids, st.data())
def test_a_changed_octet_decodes_or_is_a_ber_error(binds, community, request_id, data):
    whole = bytearray(pysnmp_message(snmp_ber.RESPONSE, community, request_id, 0, 0, binds))
    position = data.draw(st.integers(0, len(whole) - 1))
    whole[position] = data.draw(st.integers(0, 255))
    found = _decodes_or_ber_error(bytes(whole))
    if found is not None:  # what we accept, pyasn1 reads the same way
        try:
            _, pdu = pysnmp_decode(bytes(whole))
        except Exception:  # noqa: BLE001 - pyasn1 is stricter in places (e.g. value ranges)
            return
        theirs = [to_varbind(str(n), v) for n, v in v2c.apiPDU.get_varbinds(pdu)]
        assert theirs == found.varbinds


@FAST
@given(varbinds(max_size=8), communities, st.data())
def test_wrong_tags_and_lengths_are_ber_errors(binds, community, data):
    whole = pysnmp_message(snmp_ber.RESPONSE, community, 1, 0, 0, binds)
    # The message SEQUENCE, its version INTEGER, the community and the PDU are at fixed places.
    spots = [0, _after_header(whole, 0), _community_at(whole)]
    spot = data.draw(st.sampled_from(spots))
    wrong = bytearray(whole)
    wrong[spot] = data.draw(st.sampled_from([0x31, 0x03, 0x05, 0xA3, 0xA4, 0xA8, 0x1F, 0xFF]))
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_message(bytes(wrong))
    longer = bytearray(whole)
    length_at = 1  # the outer length: claim more than the datagram holds, or an indefinite form
    longer[length_at : _after_header(whole, 0)] = data.draw(
        st.sampled_from([b"\x80", b"\x85\x00\x00\x00\x00\x01", b"\x84\xff\xff\xff\xff"])
    )
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_message(bytes(longer))


@FAST
@given(st.binary(max_size=200))
def test_noise_is_a_ber_error_or_a_message(noise):
    _decodes_or_ber_error(noise)
    _decodes_or_ber_error(b"\x30" + bytes([len(noise) & 0xFF]) + noise)
    _decodes_or_ber_error(b"\x30\x81" + bytes([len(noise) & 0xFF]) + b"\x02\x01\x01" + noise)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\x30\x00", "empty sequence"),
        (bytes.fromhex("300b020103040170a2030201"), "SNMPv3 version number"),
        (bytes.fromhex("3010020101040170a20902010102010002"), "truncated INTEGER"),
    ],
)
def test_known_bad_messages(data, why):
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_message(data)


def _value_bytes(kind: str, content: bytes) -> bytes:
    vb = b"\x06\x03\x2b\x06\x01" + bytes([snmp_ber.KIND_TAGS[kind], len(content)]) + content
    body = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30" + bytes([len(vb) + 2, 0x30, len(vb)]) + vb
    pdu = b"\xa2" + bytes([len(body)]) + body
    inner = b"\x02\x01\x01\x04\x01p" + pdu
    return b"\x30" + bytes([len(inner)]) + inner


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("IpAddress", b"\x01\x02\x03"),
        ("Null", b"\x00"),
        ("noSuchObject", b"\x00"),
        ("Integer32", b""),
        ("Integer32", b"\x01\x00\x00\x00\x00"),  # 2^32 does not fit
        ("Counter32", b"\x01\x00\x00\x00\x00\x00"),
        ("ObjectIdentifier", b"\x2b\x86"),  # last sub-identifier unfinished
        ("ObjectIdentifier", b"\x2b\x80\x01"),  # non-minimal sub-identifier
        ("ObjectIdentifier", b""),
    ],
)
def test_bad_values_are_ber_errors(kind, content):
    assert snmp_ber.decode_message(_value_bytes("OctetString", b"ok")).varbinds  # the frame is fine
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.decode_message(_value_bytes(kind, content))


def test_an_unsigned_counter_sent_without_its_leading_zero_reads_unsigned():
    # Some agents encode 0xFFFFFFFF in four octets; read it as the counter it means.
    reply = snmp_ber.decode_message(_value_bytes("Counter32", b"\xff\xff\xff\xff"))
    assert reply.varbinds[0].value == U32


def test_only_read_requests_can_be_encoded():
    for tag in (0xA3, 0xA4, 0xA6, 0xA7, 0xA8, snmp_ber.RESPONSE):
        with pytest.raises(snmp_ber.BerError):
            snmp_ber.encode_request(snmp_ber.V2C, b"public", tag, 1, ["1.3.6.1.2.1.1.3.0"])


@pytest.mark.parametrize("oid", ["", "1", "3.1", "1.40", "1.3.x", "1.3.-1"])
def test_bad_oids_cannot_be_encoded(oid):
    with pytest.raises(snmp_ber.BerError):
        snmp_ber.encode_request(snmp_ber.V2C, b"public", snmp_ber.GET, 1, [oid])


def _after_header(data: bytes, pos: int) -> int:
    size = data[pos + 1]
    return pos + 2 + (size & 0x7F if size & 0x80 else 0)


def _community_at(data: bytes) -> int:
    version_at = _after_header(data, 0)
    return version_at + 2 + data[version_at + 1]


def test_the_generated_values_cover_every_kind():
    assert set(_SIMPLE) | set(_NUMBERS) | set(_OCTETS) | {"IpAddress", "ObjectIdentifier"} == set(
        snmp_ber.KIND_TAGS
    )
