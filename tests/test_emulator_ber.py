"""The lean BER codec: known encodings, round trips, and clean errors on garbage."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.emulator import ber

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)


@pytest.mark.parametrize(
    ("tag", "data", "encoded"),
    [
        (ber.INTEGER, 0, "020100"),
        (ber.INTEGER, 127, "02017f"),
        (ber.INTEGER, 128, "02020080"),
        (ber.INTEGER, -1, "0201ff"),
        (ber.INTEGER, -128, "020180"),
        (ber.INTEGER, -129, "0202ff7f"),
        (ber.INTEGER, -1835401583, "02049299fe91"),  # a real Teltonika mSent
        (ber.COUNTER32, 2**32 - 1, "410500ffffffff"),
        (ber.COUNTER64, 2**64 - 1, "460900ffffffffffffffff"),
        (ber.TIMETICKS, 100, "430164"),
        (ber.GAUGE32, 0, "420100"),
        (ber.OCTET_STRING, b"RUTX", "040452555458"),
        (ber.IP_ADDRESS, b"\x7f\x00\x00\x01", "40047f000001"),
        (ber.OPAQUE, b"\x9f\x78\x04", "44039f7804"),
        (ber.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 48690), "06082b0601040182fc32"),
        (ber.NULL, None, "0500"),
        (ber.NO_SUCH_OBJECT, None, "8000"),
        (ber.NO_SUCH_INSTANCE, None, "8100"),
        (ber.END_OF_MIB_VIEW, None, "8200"),
    ],
)
def test_known_value_encodings(tag: int, data: ber.ValueData, encoded: str) -> None:
    assert ber.encode_value(tag, data).hex() == encoded
    message = ber.CommunityMessage(
        ber.V2C, b"x", ber.Pdu(ber.RESPONSE, 1, 0, 0, [(SYS_DESCR, tag, data)])
    )
    decoded = ber.decode_message(ber.encode_message(message))
    assert decoded == message


# A GET for sysDescr.0 captured from net-snmp 5.9.3's snmpget (community "public").
NET_SNMP_GET = bytes.fromhex(
    "302902010104067075626c6963a01c020409255000020100020100300e300c06082b060102010101000500"
)


def test_decodes_a_net_snmp_get() -> None:
    message = ber.decode_message(NET_SNMP_GET)
    assert message == ber.CommunityMessage(
        ber.V2C, b"public", ber.Pdu(ber.GET, 0x09255000, 0, 0, [(SYS_DESCR, ber.NULL, None)])
    )
    assert ber.encode_message(message) == NET_SNMP_GET


@pytest.mark.parametrize(
    ("tag", "data"),
    [
        (ber.INTEGER, 2**31),
        (ber.COUNTER32, 2**32),
        (ber.COUNTER32, -1),
        (ber.COUNTER64, 2**64),
        (ber.IP_ADDRESS, b"\x01\x02\x03"),
        (ber.OCTET_STRING, "text"),
        (ber.NULL, 0),
        (ber.OBJECT_IDENTIFIER, (1,)),
        (ber.OBJECT_IDENTIFIER, (3, 1)),
        (0x47, 1),
    ],
)
def test_encoding_rejects_values_that_do_not_fit(tag: int, data: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (several messages, one per case)
        ber.encode_value(tag, data)  # type: ignore[arg-type]


def tlv(tag: int, content: bytes) -> bytes:
    """A TLV with a short-form length (test data stays under 128 bytes)."""
    assert len(content) < 128
    return bytes((tag, len(content))) + content


def v2c_with(pdu_tag: int = ber.GET, varbind: bytes | None = None, tail: bytes = b"") -> bytes:
    """A v2c message whose single varbind (or whole varbind list) is given raw."""
    binds = tlv(0x30, varbind) if varbind is not None else b""
    body = bytes.fromhex("020101") + bytes.fromhex("020100") * 2 + tlv(0x30, binds) + tail
    return tlv(0x30, bytes.fromhex("020101") + tlv(0x04, b"public") + tlv(pdu_tag, body))


NAME = bytes.fromhex("06022b06")


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "truncated"),
        (b"\x30", "truncated"),
        (bytes.fromhex("3080020101"), "indefinite length"),
        (bytes.fromhex("308501020304"), "bad length field"),
        (bytes.fromhex("300502010104"), "runs past the end"),
        (bytes.fromhex("3003020109"), "unknown SNMP version"),
        (bytes.fromhex("30030201010000"), "trailing bytes after the message"),
        (bytes.fromhex("3003020101"), "truncated"),
        (bytes.fromhex("3f03020101"), "multi-byte tag"),
        (v2c_with(pdu_tag=0xA9), "unknown PDU type"),
        (v2c_with(tail=b"\x05\x00"), "trailing bytes after the varbind list"),
        (v2c_with(varbind=b"\x05\x00"), "expected name"),
        (v2c_with(varbind=bytes.fromhex("06000500")), "empty OBJECT IDENTIFIER"),
        (v2c_with(varbind=bytes.fromhex("06022b86") + b"\x05\x00"), "ends inside"),
        (v2c_with(varbind=NAME), "truncated"),
        (v2c_with(varbind=NAME + bytes.fromhex("470100")), "unknown value type 0x47"),
        (v2c_with(varbind=NAME + bytes.fromhex("050100")), "must be empty"),
        (v2c_with(varbind=NAME + bytes.fromhex("4003010203")), "IpAddress of 3 bytes"),
        (v2c_with(varbind=NAME + bytes.fromhex("41050100000000")), "bad value for type 0x41"),
        (v2c_with(varbind=NAME + bytes.fromhex("0200")), "INTEGER value of 0 bytes"),
        (v2c_with(varbind=NAME + bytes.fromhex("05000500")), "trailing bytes in a varbind"),
    ],
)
def test_malformed_datagrams_raise_value_error(datagram: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ber.decode_message(datagram)


@given(st.binary(max_size=200))
def test_garbage_only_ever_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        ber.decode_message(data)


oids = st.builds(
    lambda first, second, rest: (first, second, *rest),
    st.integers(0, 1),
    st.integers(0, 39),
    st.lists(st.integers(0, 2**32 - 1), max_size=20),
) | st.builds(
    lambda second, rest: (2, second, *rest),
    st.integers(0, 2**20),
    st.lists(st.integers(0, 2**32 - 1), max_size=5),
)

values = st.one_of(
    st.tuples(st.just(ber.INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(
        st.sampled_from([ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS]), st.integers(0, 2**32 - 1)
    ),
    st.tuples(st.just(ber.COUNTER64), st.integers(0, 2**64 - 1)),
    st.tuples(st.sampled_from([ber.OCTET_STRING, ber.OPAQUE]), st.binary(max_size=300)),
    st.tuples(st.just(ber.IP_ADDRESS), st.binary(min_size=4, max_size=4)),
    st.tuples(st.just(ber.OBJECT_IDENTIFIER), oids),
    st.tuples(
        st.sampled_from([ber.NULL, ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE, ber.END_OF_MIB_VIEW]),
        st.none(),
    ),
)
varbinds = st.lists(st.builds(lambda oid, value: (oid, *value), oids, values), max_size=30)
pdus = st.builds(
    ber.Pdu,
    st.sampled_from(sorted(ber.PDU_TAGS)),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    varbinds,
)


@given(st.sampled_from([ber.V1, ber.V2C]), st.binary(max_size=40), pdus)
def test_community_messages_round_trip(version: int, community: bytes, pdu: ber.Pdu) -> None:
    message = ber.CommunityMessage(version, community, pdu)
    assert ber.decode_message(ber.encode_message(message)) == message


@given(
    st.integers(0, 2**31 - 1),
    st.integers(484, 2**31 - 1),
    st.integers(0, 7),
    st.builds(
        ber.UsmParameters,
        st.binary(max_size=32),
        st.integers(0, 2**31 - 1),
        st.integers(0, 2**31 - 1),
        st.binary(max_size=32),
        st.binary(max_size=48),
        st.binary(max_size=8),
    ),
    st.one_of(
        st.binary(max_size=300),
        st.builds(ber.ScopedPdu, st.binary(max_size=32), st.binary(max_size=32), pdus),
    ),
)
def test_v3_messages_round_trip(
    msg_id: int, max_size: int, flags: int, usm: ber.UsmParameters, data: ber.ScopedPdu | bytes
) -> None:
    params, auth_offset = ber.encode_usm(usm)
    assert ber.decode_usm(params) == (usm, auth_offset)
    assert params[auth_offset : auth_offset + len(usm.auth)] == usm.auth
    message = ber.V3Message(msg_id, max_size, flags, 3, params, data)
    encoded, offset = ber.encode_v3(message)
    decoded = ber.decode_message(encoded)
    assert decoded == message
    assert isinstance(decoded, ber.V3Message)
    assert decoded.security_offset == offset
    assert encoded[offset : offset + len(params)] == params


def test_print_cost_of_a_20_varbind_getbulk_response() -> None:
    binds: list[ber.VarBind] = [
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, i), ber.COUNTER32, 3_000_000_000 + i) for i in range(10)
    ] + [
        ((1, 3, 6, 1, 4, 1, 48690, 2, 2, 1, col, 1), ber.OCTET_STRING, b"Registered, home")
        for col in range(10)
    ]
    message = ber.CommunityMessage(ber.V2C, b"public", ber.Pdu(ber.RESPONSE, 4711, 0, 0, binds))
    rounds = 2000  # bounded: about 0.1 s
    start = time.perf_counter()
    for _ in range(rounds):
        decoded = ber.decode_message(ber.encode_message(message))
    elapsed = time.perf_counter() - start
    assert decoded == message
    print(f"BER encode+decode of a 20-varbind GETBULK response: {elapsed / rounds * 1e6:.1f} us")
