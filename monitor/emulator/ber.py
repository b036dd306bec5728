"""A lean BER codec for SNMP v1, v2c and v3 messages (RFC 3416, RFC 3412, RFC 3414).

Pure functions over bytes; it imports nothing of router-monitor, so the collector may reuse it
as its fast codec. Values travel as `(oid, tag, data)` tuples: `data` is an int for the integer
types, bytes for OCTET STRING, IpAddress and Opaque, an OID tuple for OBJECT IDENTIFIER and None
for NULL and the v2 exceptions. Every malformed input raises `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

Oid = tuple[int, ...]
ValueData = int | bytes | Oid | None
VarBind = tuple[Oid, int, ValueData]

INTEGER, OCTET_STRING, NULL, OBJECT_IDENTIFIER, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GET_NEXT, RESPONSE, SET, GET_BULK, INFORM, TRAP_V2, REPORT = (
    0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8,
)  # fmt: skip
V1, V2C, V3 = 0, 1, 3

PDU_TAGS = frozenset({GET, GET_NEXT, RESPONSE, SET, GET_BULK, INFORM, TRAP_V2, REPORT})
_EMPTY_TAGS = frozenset({NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
_BYTES_TAGS = frozenset({OCTET_STRING, OPAQUE})
_UNSIGNED_BITS = {COUNTER32: 32, GAUGE32: 32, TIMETICKS: 32, COUNTER64: 64}
_MAX_OID_ARCS = 128  # RFC 2578 3.5


@dataclass(slots=True)
class Pdu:
    """A PDU; for GetBulk, error_status is non-repeaters and error_index max-repetitions."""

    tag: int
    request_id: int
    error_status: int = 0
    error_index: int = 0
    varbinds: list[VarBind] = field(default_factory=list)


@dataclass(slots=True)
class CommunityMessage:
    """An SNMPv1 (version 0) or v2c (version 1) message."""

    version: int
    community: bytes
    pdu: Pdu


@dataclass(slots=True)
class ScopedPdu:
    """The v3 scopedPDU: context engine ID, context name and the PDU."""

    context_engine_id: bytes
    context_name: bytes
    pdu: Pdu


@dataclass(slots=True)
class V3Message:
    """An SNMPv3 message; `data` is a plain ScopedPdu or the encrypted one as bytes."""

    msg_id: int
    max_size: int
    flags: int
    security_model: int
    security_parameters: bytes
    data: ScopedPdu | bytes
    # Where the security parameters' content starts in the decoded datagram (for HMAC).
    security_offset: int = field(default=-1, compare=False)


@dataclass(slots=True)
class UsmParameters:
    """UsmSecurityParameters (RFC 3414 2.4); `auth` and `priv` are the raw parameter bytes."""

    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth: bytes
    priv: bytes


# --- encoding ------------------------------------------------------------------------------

_SHORT_LENGTHS = [bytes((n,)) for n in range(128)]


def _length(n: int) -> bytes:
    if n < 128:
        return _SHORT_LENGTHS[n]
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


# Two-byte headers (tag, short length) prebuilt: most TLVs in SNMP are short.
_HEADERS = [[bytes((tag, n)) for n in range(128)] for tag in range(256)]


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 128:
        return _HEADERS[tag][n] + content
    return bytes((tag,)) + _length(n) + content


def _int_content(n: int) -> bytes:
    return n.to_bytes(((n + (n < 0)).bit_length() + 8) // 8, "big", signed=True)


def encode_integer(n: int) -> bytes:
    """The TLV of an INTEGER."""
    return _tlv(INTEGER, _int_content(n))


@lru_cache(maxsize=65536)
def encode_oid(oid: Oid) -> bytes:
    """The TLV of an OBJECT IDENTIFIER (cached: agents send the same OIDs over and over)."""
    if len(oid) < 2 or len(oid) > _MAX_OID_ARCS:
        raise ValueError(f"an OID needs 2 to {_MAX_OID_ARCS} arcs, got {len(oid)}")
    first, second = oid[0], oid[1]
    if first > 2 or (first < 2 and second >= 40) or min(oid) < 0:
        raise ValueError(f"invalid OID arcs {oid[:2]}")
    out = bytearray()
    for arc in (first * 40 + second, *oid[2:]):
        if arc < 128:
            out.append(arc)
            continue
        chunk = bytearray((arc & 0x7F,))
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += chunk[::-1]
    return _tlv(OBJECT_IDENTIFIER, bytes(out))


def encode_value(tag: int, data: ValueData) -> bytes:
    """The TLV of one varbind value; raises ValueError if `data` does not fit `tag`."""
    if tag == OCTET_STRING and type(data) is bytes:
        return _tlv(OCTET_STRING, data)
    if tag == INTEGER and type(data) is int:
        if not -(2**31) <= data < 2**31:
            raise ValueError(f"Integer32 out of range: {data}")
        return _tlv(INTEGER, _int_content(data))
    if tag in _UNSIGNED_BITS and type(data) is int:
        if not 0 <= data < 1 << _UNSIGNED_BITS[tag]:
            raise ValueError(f"value {data} out of range for type 0x{tag:02x}")
        return _tlv(tag, _int_content(data))
    if tag in _BYTES_TAGS and isinstance(data, bytes):
        return _tlv(tag, data)
    if tag == IP_ADDRESS and isinstance(data, bytes) and len(data) == 4:
        return _tlv(tag, data)
    if tag == OBJECT_IDENTIFIER and isinstance(data, tuple):
        return encode_oid(data)
    if tag in _EMPTY_TAGS and data is None:
        return bytes((tag, 0))
    raise ValueError(f"cannot encode {type(data).__name__} as type 0x{tag:02x}")


def encode_pdu(pdu: Pdu) -> bytes:
    """The TLV of a PDU with its varbind list."""
    binds = b"".join(
        [
            _tlv(SEQUENCE, encode_oid(oid) + encode_value(tag, data))
            for oid, tag, data in pdu.varbinds
        ]
    )
    body = (
        encode_integer(pdu.request_id)
        + encode_integer(pdu.error_status)
        + encode_integer(pdu.error_index)
        + _tlv(SEQUENCE, binds)
    )
    return _tlv(pdu.tag, body)


def encode_scoped_pdu(scoped: ScopedPdu) -> bytes:
    """The TLV of a v3 scopedPDU (the plaintext that privacy encrypts)."""
    body = (
        _tlv(OCTET_STRING, scoped.context_engine_id)
        + _tlv(OCTET_STRING, scoped.context_name)
        + encode_pdu(scoped.pdu)
    )
    return _tlv(SEQUENCE, body)


def encode_usm(params: UsmParameters) -> tuple[bytes, int]:
    """The USM parameters SEQUENCE and the offset of the auth parameters' content in it."""
    head = (
        _tlv(OCTET_STRING, params.engine_id)
        + encode_integer(params.boots)
        + encode_integer(params.time)
        + _tlv(OCTET_STRING, params.user)
        + bytes((OCTET_STRING,))
        + _length(len(params.auth))
    )
    body = head + params.auth + _tlv(OCTET_STRING, params.priv)
    prefix = bytes((SEQUENCE,)) + _length(len(body))
    return prefix + body, len(prefix) + len(head)


def encode_v3(message: V3Message) -> tuple[bytes, int]:
    """A v3 message and the offset of its security parameters' content in it."""
    global_data = _tlv(
        SEQUENCE,
        encode_integer(message.msg_id)
        + encode_integer(message.max_size)
        + _tlv(OCTET_STRING, bytes((message.flags,)))
        + encode_integer(message.security_model),
    )
    data = message.data
    scoped = encode_scoped_pdu(data) if isinstance(data, ScopedPdu) else _tlv(OCTET_STRING, data)
    params = message.security_parameters
    head = encode_integer(V3) + global_data + bytes((OCTET_STRING,)) + _length(len(params))
    body = head + params + scoped
    prefix = bytes((SEQUENCE,)) + _length(len(body))
    return prefix + body, len(prefix) + len(head)


def encode_message(message: CommunityMessage | V3Message) -> bytes:
    """The datagram of a v1, v2c or v3 message."""
    if isinstance(message, V3Message):
        return encode_v3(message)[0]
    if message.version not in (V1, V2C):
        raise ValueError(f"community messages are version 0 or 1, not {message.version}")
    body = encode_integer(message.version) + _tlv(OCTET_STRING, message.community)
    return _tlv(SEQUENCE, body + encode_pdu(message.pdu))


# --- decoding ------------------------------------------------------------------------------


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Tag, content start and content end of the TLV at `pos`, checked against `end`."""
    if pos + 2 > end:
        raise ValueError(f"truncated TLV at offset {pos}")
    tag = data[pos]
    n = data[pos + 1]
    if n < 0x80 and pos + 2 + n <= end and tag & 0x1F != 0x1F:  # the common short form
        return tag, pos + 2, pos + 2 + n
    if tag & 0x1F == 0x1F:
        raise ValueError(f"multi-byte tag at offset {pos} is not SNMP")
    pos += 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0:
            raise ValueError("indefinite length is not allowed in SNMP")
        if count > 4 or pos + count > end:
            raise ValueError(f"bad length field at offset {pos - 2}")
        n = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + n > end:
        raise ValueError(f"length {n} at offset {pos} runs past the end")
    return tag, pos, pos + n


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    found, start, stop = _header(data, pos, end)
    if found != tag:
        raise ValueError(f"expected {what} (0x{tag:02x}), found 0x{found:02x} at offset {pos}")
    return start, stop


def _int(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """An INTEGER's value and the offset after it."""
    start, stop = _expect(data, pos, end, INTEGER, what)
    if start == stop or stop - start > 9:
        raise ValueError(f"{what}: INTEGER of {stop - start} bytes")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _octets(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    start, stop = _expect(data, pos, end, OCTET_STRING, what)
    return data[start:stop], stop


@lru_cache(maxsize=65536)
def decode_oid(content: bytes) -> Oid:
    """The arcs of an OBJECT IDENTIFIER's content octets."""
    if not content:
        raise ValueError("empty OBJECT IDENTIFIER")
    if content[-1] & 0x80:
        raise ValueError("OBJECT IDENTIFIER ends inside a sub-identifier")
    if len(content) > _MAX_OID_ARCS * 5:
        raise ValueError(f"OBJECT IDENTIFIER longer than {_MAX_OID_ARCS} arcs")
    if max(content) < 0x80:  # every arc below 128: one byte each, the common case
        first = content[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        return head + tuple(content[1:])
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if len(arcs) >= _MAX_OID_ARCS:
        raise ValueError(f"OBJECT IDENTIFIER longer than {_MAX_OID_ARCS} arcs")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def _value(tag: int, content: bytes) -> ValueData:
    if tag == INTEGER:
        if not content or len(content) > 9:
            raise ValueError(f"INTEGER value of {len(content)} bytes")
        return int.from_bytes(content, "big", signed=True)
    if tag in _UNSIGNED_BITS:
        # Unsigned even without the leading zero octet some agents forget.
        value = int.from_bytes(content, "big")
        if not content or value >> _UNSIGNED_BITS[tag]:
            raise ValueError(f"bad value for type 0x{tag:02x}: {content.hex()}")
        return value
    if tag in _BYTES_TAGS:
        return content
    if tag == IP_ADDRESS:
        if len(content) != 4:
            raise ValueError(f"IpAddress of {len(content)} bytes")
        return content
    if tag == OBJECT_IDENTIFIER:
        return decode_oid(content)
    if tag in _EMPTY_TAGS:
        if content:
            raise ValueError(f"type 0x{tag:02x} must be empty")
        return None
    raise ValueError(f"unknown value type 0x{tag:02x}")


def _pdu(data: bytes, pos: int, end: int) -> tuple[Pdu, int]:
    tag, start, stop = _header(data, pos, end)
    if tag not in PDU_TAGS:
        raise ValueError(f"unknown PDU type 0x{tag:02x}")
    request_id, cursor = _int(data, start, stop, "request-id")
    status, cursor = _int(data, cursor, stop, "error-status")
    index, cursor = _int(data, cursor, stop, "error-index")
    cursor, list_end = _expect(data, cursor, stop, SEQUENCE, "varbind list")
    if list_end != stop:
        raise ValueError("trailing bytes after the varbind list")
    varbinds: list[VarBind] = []
    while cursor < list_end:
        kind, bind_start, bind_end = _header(data, cursor, list_end)
        if kind != SEQUENCE:
            raise ValueError(f"expected varbind (0x30), found 0x{kind:02x} at offset {cursor}")
        kind, oid_start, oid_end = _header(data, bind_start, bind_end)
        if kind != OBJECT_IDENTIFIER:
            raise ValueError(f"expected name (0x06), found 0x{kind:02x} at offset {bind_start}")
        value_tag, value_start, value_end = _header(data, oid_end, bind_end)
        if value_end != bind_end:
            raise ValueError("trailing bytes in a varbind")
        oid = decode_oid(data[oid_start:oid_end])
        varbinds.append((oid, value_tag, _value(value_tag, data[value_start:value_end])))
        cursor = bind_end
    return Pdu(tag, request_id, status, index, varbinds), stop


def decode_scoped_pdu(data: bytes, *, allow_trailing: bool = False) -> ScopedPdu:
    """A scopedPDU; `allow_trailing` accepts the padding a block cipher leaves."""
    start, stop = _expect(data, 0, len(data), SEQUENCE, "scopedPDU")
    if stop != len(data) and not allow_trailing:
        raise ValueError("trailing bytes after the scopedPDU")
    engine_id, cursor = _octets(data, start, stop, "contextEngineID")
    name, cursor = _octets(data, cursor, stop, "contextName")
    pdu, cursor = _pdu(data, cursor, stop)
    if cursor != stop:
        raise ValueError("trailing bytes in the scopedPDU")
    return ScopedPdu(engine_id, name, pdu)


def decode_usm(data: bytes) -> tuple[UsmParameters, int]:
    """USM security parameters and the offset of the auth parameters' content in `data`."""
    start, stop = _expect(data, 0, len(data), SEQUENCE, "UsmSecurityParameters")
    if stop != len(data):
        raise ValueError("trailing bytes after the USM parameters")
    engine_id, cursor = _octets(data, start, stop, "msgAuthoritativeEngineID")
    boots, cursor = _int(data, cursor, stop, "msgAuthoritativeEngineBoots")
    time, cursor = _int(data, cursor, stop, "msgAuthoritativeEngineTime")
    user, cursor = _octets(data, cursor, stop, "msgUserName")
    auth_start, cursor = _expect(data, cursor, stop, OCTET_STRING, "msgAuthenticationParameters")
    auth = data[auth_start:cursor]
    priv, cursor = _octets(data, cursor, stop, "msgPrivacyParameters")
    if cursor != stop:
        raise ValueError("trailing bytes in the USM parameters")
    return UsmParameters(engine_id, boots, time, user, auth, priv), auth_start


def decode_message(data: bytes) -> CommunityMessage | V3Message:
    """A v1, v2c or v3 datagram; raises ValueError on anything malformed."""
    start, stop = _expect(data, 0, len(data), SEQUENCE, "message")
    if stop != len(data):
        raise ValueError("trailing bytes after the message")
    version, cursor = _int(data, start, stop, "version")
    if version in (V1, V2C):
        community, cursor = _octets(data, cursor, stop, "community")
        pdu, cursor = _pdu(data, cursor, stop)
        if cursor != stop:
            raise ValueError("trailing bytes after the PDU")
        return CommunityMessage(version, community, pdu)
    if version != V3:
        raise ValueError(f"unknown SNMP version {version}")
    global_start, global_end = _expect(data, cursor, stop, SEQUENCE, "msgGlobalData")
    msg_id, inner = _int(data, global_start, global_end, "msgID")
    max_size, inner = _int(data, inner, global_end, "msgMaxSize")
    flags, inner = _octets(data, inner, global_end, "msgFlags")
    model, inner = _int(data, inner, global_end, "msgSecurityModel")
    if len(flags) != 1 or inner != global_end:
        raise ValueError("malformed msgGlobalData")
    params_start, cursor = _expect(data, global_end, stop, OCTET_STRING, "msgSecurityParameters")
    tag, body_start, body_end = _header(data, cursor, stop)
    if body_end != stop:
        raise ValueError("trailing bytes after msgData")
    if tag == OCTET_STRING:
        payload: ScopedPdu | bytes = data[body_start:body_end]
    elif tag == SEQUENCE:
        payload = decode_scoped_pdu(data[cursor:body_end])
    else:
        raise ValueError(f"msgData of type 0x{tag:02x}")
    return V3Message(
        msg_id, max_size, flags[0], model, data[params_start:cursor], payload, params_start
    )
