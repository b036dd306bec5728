"""A small BER codec for SNMP v1/v2c read messages: the collector's hot path (issue 7).

pysnmp stays the SNMP library of record (v3 USM, and the reference the tests compare against);
this module only covers what a v1/v2c poll needs, at a fraction of pyasn1's cost: encode a GET,
GETNEXT or GETBULK request, and decode the agent's Response into codec-neutral `Varbind`s::

    request = encode_request(V2C, b"public", GET, 42, ["1.3.6.1.2.1.1.3.0"])
    reply = decode_message(datagram)   # raises BerError for anything malformed, never else
    reply.varbinds == [Varbind("1.3.6.1.2.1.1.3.0", "TimeTicks", 8640000)]

Only the read PDUs and the Response exist here: no write request can be encoded. Kinds are the
names `snmp_codec.to_varbind` gives pysnmp values, so both codecs feed the same conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from monitor.collectors.convert import Varbind

V1, V2C = 0, 1
GET, GET_NEXT, RESPONSE, GET_BULK = 0xA0, 0xA1, 0xA2, 0xA5
READ_PDUS = frozenset({GET, GET_NEXT, GET_BULK})
_PDUS = READ_PDUS | {RESPONSE}
_SEQUENCE, _INTEGER, _OCTETS, _NULL, _OID = 0x30, 0x02, 0x04, 0x05, 0x06

KIND_TAGS: dict[str, int] = {
    "Integer32": 0x02,
    "OctetString": 0x04,
    "Null": 0x05,
    "ObjectIdentifier": 0x06,
    "IpAddress": 0x40,
    "Counter32": 0x41,
    "Gauge32": 0x42,
    "TimeTicks": 0x43,
    "Opaque": 0x44,
    "Counter64": 0x46,
    "noSuchObject": 0x80,
    "noSuchInstance": 0x81,
    "endOfMibView": 0x82,
}
_KINDS = {tag: kind for kind, tag in KIND_TAGS.items()}
_BYTES = frozenset({0x04, 0x40, 0x44})
_EMPTY = frozenset({0x05, 0x80, 0x81, 0x82})
# Unsigned application types: (largest value, most content octets). A negative encoding (some
# agents drop the leading zero octet) is read as the unsigned number it spells.
_UNSIGNED = {0x41: (2**32 - 1, 5), 0x42: (2**32 - 1, 5), 0x43: (2**32 - 1, 5), 0x46: (2**64 - 1, 9)}
_OID_CACHE: dict[bytes, str] = {}  # every router of a model answers the same OIDs
_OID_CACHE_SIZE = 50_000


class BerError(ValueError):
    """A message that is not a well-formed SNMP v1/v2c message, or a value that cannot be sent."""


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message; for GETBULK `error_status`/`error_index` hold non-repeaters and
    max-repetitions, as on the wire."""

    version: int
    community: bytes
    tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[Varbind]


# --- encoding --------------------------------------------------------------------------------


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _int_content(value: int) -> bytes:
    return value.to_bytes(
        ((value if value >= 0 else ~value).bit_length() + 8) // 8, "big", signed=True
    )


@lru_cache(maxsize=4096)
def encode_oid(oid: str) -> bytes:
    """The BER TLV of a dotted OID such as '1.3.6.1.2.1.1.3.0'."""
    try:
        arcs = [int(arc) for arc in oid.split(".")]
    except ValueError:
        raise BerError(f"not a dotted OID: {oid!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or min(arcs) < 0 or (arcs[0] < 2 and arcs[1] >= 40):
        raise BerError(f"not a valid OID: {oid!r}")
    content = bytearray()
    for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content += bytes(reversed(chunk))
    return _tlv(_OID, bytes(content))


def _encode_value(varbind: Varbind) -> bytes:
    tag = KIND_TAGS.get(varbind.kind)
    value = varbind.value
    if tag is None:
        raise BerError(f"unknown value kind {varbind.kind!r}")
    if tag in _EMPTY:
        return bytes((tag, 0))
    if tag == _OID:
        if not isinstance(value, bytes):
            raise BerError("an ObjectIdentifier value is its dotted text as bytes")
        return encode_oid(value.decode("ascii", "replace"))
    if tag in _BYTES:
        if not isinstance(value, bytes) or (tag == 0x40 and len(value) != 4):
            raise BerError(f"bad {varbind.kind} value")
        return _tlv(tag, value)
    if not isinstance(value, int):
        raise BerError(f"bad {varbind.kind} value")
    return _tlv(tag, _int_content(value))


def encode_varbinds(varbinds: Sequence[Varbind]) -> bytes:
    """The varbind list (a SEQUENCE OF SEQUENCE {name, value}) as BER."""
    body = b"".join(_tlv(_SEQUENCE, encode_oid(vb.oid) + _encode_value(vb)) for vb in varbinds)
    return _tlv(_SEQUENCE, body)


@lru_cache(maxsize=1024)
def _null_varbinds(oids: tuple[str, ...]) -> bytes:
    # A poll plan asks the same OIDs of every router of a model: encode them once.
    return encode_varbinds([Varbind(oid, "Null") for oid in oids])


def _message(
    version: int, community: bytes, tag: int, request_id: int, a: int, b: int, varbinds: bytes
) -> bytes:
    if tag not in _PDUS:
        raise BerError(f"PDU type 0x{tag:02x} is not a read request or a response")
    header = b"".join(_tlv(_INTEGER, _int_content(n)) for n in (request_id, a, b))
    pdu = _tlv(tag, header + varbinds)
    return _tlv(_SEQUENCE, _tlv(_INTEGER, _int_content(version)) + _tlv(_OCTETS, community) + pdu)


def encode_request(
    version: int,
    community: bytes,
    tag: int,
    request_id: int,
    oids: Sequence[str],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET, GETNEXT or GETBULK request for `oids` (values NULL), ready to send."""
    if tag not in READ_PDUS:
        raise BerError(f"PDU type 0x{tag:02x} is not a read request")
    varbinds = _null_varbinds(tuple(oids))
    return _message(version, community, tag, request_id, non_repeaters, max_repetitions, varbinds)


def encode_message(message: Message) -> bytes:
    """Any message of this module (a request or a Response), with its values."""
    varbinds = encode_varbinds(message.varbinds)
    return _message(
        message.version, message.community, message.tag, message.request_id,
        message.error_status, message.error_index, varbinds,
    )  # fmt: skip


# --- decoding --------------------------------------------------------------------------------


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`, which must end by `end`."""
    if pos + 2 > end:
        raise BerError("truncated")
    tag = data[pos]
    size = data[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4:
            raise BerError("unsupported length form")
        if pos + count > end:
            raise BerError("truncated length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + size > end:
        raise BerError("length runs past its container")
    return tag, pos, pos + size


def _integer(data: bytes, start: int, stop: int) -> int:
    if not 0 < stop - start <= 9:
        raise BerError("bad INTEGER length")
    return int.from_bytes(data[start:stop], "big", signed=True)


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _header(data, pos, end)
    if found != tag:
        raise BerError(f"expected tag 0x{tag:02x}, found 0x{found:02x}")
    return start, stop


def oid_text(raw: bytes) -> str:
    """Dotted text of an OID's BER content octets."""
    cached = _OID_CACHE.get(raw)
    if cached is not None:
        return cached
    if not raw or raw[-1] & 0x80:
        raise BerError("empty or truncated OID")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in raw:
        if fresh and octet == 0x80:
            raise BerError("non-minimal OID sub-identifier")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    text = ".".join(map(str, (*head, *arcs[1:])))
    if len(_OID_CACHE) >= _OID_CACHE_SIZE:
        _OID_CACHE.clear()
    _OID_CACHE[bytes(raw)] = text
    return text


def _value(oid: str, tag: int, data: bytes, start: int, stop: int) -> Varbind:
    kind = _KINDS.get(tag)
    if kind is None:
        raise BerError(f"unknown value type 0x{tag:02x}")
    if tag in _EMPTY:
        if stop != start:
            raise BerError(f"{kind} with content")
        return Varbind(oid, kind)
    if tag in _BYTES:
        if tag == 0x40 and stop - start != 4:
            raise BerError("IpAddress of other than 4 octets")
        return Varbind(oid, kind, data[start:stop])
    if tag == _OID:
        return Varbind(oid, kind, oid_text(data[start:stop]).encode())
    number = _integer(data, start, stop)
    limits = _UNSIGNED.get(tag)
    if limits is None:
        if not -(2**31) <= number < 2**31:
            raise BerError("Integer32 out of range")
    else:
        largest, octets = limits
        if stop - start > octets:
            raise BerError(f"{kind} too long")
        number &= largest
    return Varbind(oid, kind, number)


def _varbinds(data: bytes, pos: int, end: int) -> list[Varbind]:
    found: list[Varbind] = []
    while pos < end:
        start, stop = _expect(data, pos, end, _SEQUENCE)
        name_start, name_stop = _expect(data, start, stop, _OID)
        tag, value_start, value_stop = _header(data, name_stop, stop)
        if value_stop != stop:
            raise BerError("trailing octets in a varbind")
        found.append(_value(oid_text(data[name_start:name_stop]), tag, data, value_start, stop))
        pos = stop
    return found


def decode_message(data: bytes) -> Message:
    """Decode a v1/v2c message (a request or a Response); BerError if it is anything else."""
    try:
        start, end = _expect(data, 0, len(data), _SEQUENCE)
        if end != len(data):
            raise BerError("trailing octets after the message")
        version_start, pos = _expect(data, start, end, _INTEGER)
        version = _integer(data, version_start, pos)
        if version not in (V1, V2C):
            raise BerError(f"not SNMP v1/v2c (version {version})")
        community_start, community_stop = _expect(data, pos, end, _OCTETS)
        tag, pos, pdu_end = _header(data, community_stop, end)
        if tag not in _PDUS or pdu_end != end:
            raise BerError(f"unexpected PDU 0x{tag:02x}")
        fields = [0, 0, 0]
        for index in range(3):
            field_start, pos = _expect(data, pos, pdu_end, _INTEGER)
            fields[index] = _integer(data, field_start, pos)
        list_start, list_end = _expect(data, pos, pdu_end, _SEQUENCE)
        if list_end != pdu_end:
            raise BerError("trailing octets in the PDU")
        varbinds = _varbinds(data, list_start, list_end)
    except IndexError as exc:  # a bounds check missed above must still be a decode error
        raise BerError("truncated") from exc
    community = data[community_start:community_stop]
    return Message(version, community, tag, fields[0], fields[1], fields[2], varbinds)
