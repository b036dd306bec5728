"""The SNMP wire seam: send read requests, return `Varbind`s or raise `CodecError`.

`SnmpCodec` is what the collector calls: GET a list of instance OIDs and walk table columns
(GETBULK), against one target, within a timeout. `PysnmpCodec` implements it on pysnmp 7's
asyncio high-level API with one `SnmpEngine` for every target. Only GET and GETBULK are
imported from pysnmp, so no code path here can send a SET. `read_plan` is the exchange logic
both codecs share; the lean v1/v2c codec (issue 7, v2c.py) takes v2c polls off pysnmp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.entity.engine import SnmpEngine
from pysnmp.hlapi.v3arch.asyncio import auth
from pysnmp.hlapi.v3arch.asyncio.auth import CommunityData, UsmUserData
from pysnmp.hlapi.v3arch.asyncio.cmdgen import bulk_cmd, get_cmd
from pysnmp.hlapi.v3arch.asyncio.context import ContextData
from pysnmp.hlapi.v3arch.asyncio.transport import UdpTransportTarget
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.smi.rfc1902 import ObjectIdentity, ObjectType

from monitor.collectors.convert import Varbind
from monitor.model import FailureKind, PollTarget, SnmpCredentials

GET_CHUNK = 40  # varbinds per GET PDU: well under a 1472-byte datagram for typical values
BULK_REPETITIONS = 25
MAX_WALK_ROWS = 2000  # a walk stops here even on a huge table: the deadline is the real bound


@dataclass(frozen=True, slots=True)
class Walk:
    """A table column to read: its first `rows` rows, or all of them when `rows` is None."""

    column: str
    rows: int | None = None


class CodecError(Exception):
    """A request got no usable answer; `kind` says why, `detail` never holds a secret."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class SnmpCodec(Protocol):
    """Reads varbinds from one agent; never writes."""

    async def fetch(
        self, target: PollTarget, get: Sequence[str], walk: Sequence[Walk], budget: float
    ) -> list[Varbind]:
        """GET `get` and walk each column in `walk` within `budget` seconds; raise CodecError."""
        ...

    async def aclose(self) -> None:
        """Close sockets."""
        ...


GetFn = Callable[[Sequence[str]], Awaitable[list[Varbind]]]
BulkFn = Callable[[int, int, Sequence[str]], Awaitable[list[Varbind]]]


async def read_plan(
    get_oids: GetFn, bulk: BulkFn, get: Sequence[str], walk: Sequence[Walk]
) -> list[Varbind]:
    """One exchange of a poll on any codec's GET and GETBULK: the chunks of `get`, the first
    row of each `rows=1` column (one GETBULK, every column a non-repeater) and each column walk,
    concurrently."""
    jobs = [get_oids(get[i : i + GET_CHUNK]) for i in range(0, len(get), GET_CHUNK)]
    firsts = [w.column for w in walk if w.rows == 1]
    if firsts:
        jobs.append(_first_rows(bulk, firsts))
    jobs.extend(_walk(bulk, w) for w in walk if w.rows != 1)
    if len(jobs) == 1:
        return await jobs[0]  # the common small poll: no tasks to make
    results = await asyncio.gather(*jobs)
    return [vb for result in results for vb in result]


async def _first_rows(bulk: BulkFn, columns: Sequence[str]) -> list[Varbind]:
    # GETBULK with every column a non-repeater asks for each column's first successor.
    found = await bulk(len(columns), 0, columns)
    return [vb for vb, column in zip(found, columns, strict=False) if _under(vb.oid, column)]


async def _walk(bulk: BulkFn, walk: Walk) -> list[Varbind]:
    rows: list[Varbind] = []
    limit = walk.rows or MAX_WALK_ROWS
    cursor = walk.column
    while len(rows) < limit:
        found = await bulk(0, min(BULK_REPETITIONS, limit - len(rows)), [cursor])
        inside = [vb for vb in found if _under(vb.oid, walk.column)]
        rows.extend(inside)
        if not found or len(inside) < len(found) or found[-1].oid == cursor:
            break
        cursor = found[-1].oid
    return rows[:limit]


_AUTH = {
    "MD5": auth.USM_AUTH_HMAC96_MD5,
    "SHA": auth.USM_AUTH_HMAC96_SHA,
    "SHA-224": auth.USM_AUTH_HMAC128_SHA224,
    "SHA-256": auth.USM_AUTH_HMAC192_SHA256,
    "SHA-384": auth.USM_AUTH_HMAC256_SHA384,
    "SHA-512": auth.USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    "DES": auth.USM_PRIV_CBC56_DES,
    "AES": auth.USM_PRIV_CFB128_AES,
    # net-snmp and most routers localise AES-192/256 keys the Blumenthal way.
    "AES-192": auth.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES-256": auth.USM_PRIV_CFB256_AES_BLUMENTHAL,
}
_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.DecryptionError,
    errind.UnknownSecurityName,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)
# Most specific classes first: Integer derives from Integer32, IpAddress from OctetString.
_KINDS: tuple[tuple[type[Any], str], ...] = (
    (rfc1905.NoSuchObject, "noSuchObject"),
    (rfc1905.NoSuchInstance, "noSuchInstance"),
    (rfc1905.EndOfMibView, "endOfMibView"),
    (rfc1902.Counter64, "Counter64"),
    (rfc1902.Counter32, "Counter32"),
    (rfc1902.Gauge32, "Gauge32"),
    (rfc1902.Unsigned32, "Unsigned32"),
    (rfc1902.TimeTicks, "TimeTicks"),
    (rfc1902.Integer32, "Integer32"),
    (rfc1902.IpAddress, "IpAddress"),
    (rfc1902.Opaque, "Opaque"),
    (rfc1902.OctetString, "OctetString"),
    # pyasn1 decodes an OID value as the universal type, not rfc1902's subclass of it.
    (univ.ObjectIdentifier, "ObjectIdentifier"),
)


def to_varbind(oid: str, value: Any) -> Varbind:
    """A pysnmp value as a codec-neutral Varbind (ints as int, strings as bytes)."""
    for cls, kind in _KINDS:
        if isinstance(value, cls):
            if kind in ("noSuchObject", "noSuchInstance", "endOfMibView"):
                return Varbind(oid, kind)
            if kind == "ObjectIdentifier":
                return Varbind(oid, kind, str(value).encode())
            if kind in ("IpAddress", "Opaque", "OctetString"):
                return Varbind(oid, kind, bytes(value))
            return Varbind(oid, kind, int(value))
    return Varbind(oid, "Null")


class PysnmpCodec:
    """`SnmpCodec` on pysnmp's asyncio hlapi; one engine, targets configured on first use."""

    def __init__(self, retries: int = 1) -> None:
        self._engine: SnmpEngine | None = None
        self._retries = retries
        self._auth: dict[SnmpCredentials, CommunityData | UsmUserData] = {}
        self._targets: dict[tuple[str, int, float], UdpTransportTarget] = {}
        self._context = ContextData()

    async def fetch(
        self, target: PollTarget, get: Sequence[str], walk: Sequence[Walk], budget: float
    ) -> list[Varbind]:
        """GET `get` in chunks and walk each column, concurrently, within `budget` seconds."""
        auth_data = self._auth_data(target)
        transport = await self._transport(target, budget)

        async def get_oids(oids: Sequence[str]) -> list[Varbind]:
            objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
            reply = await get_cmd(
                self.engine, auth_data, transport, self._context, *objects, lookupMib=False
            )
            return _varbinds(reply)

        async def bulk(non_repeaters: int, repetitions: int, oids: Sequence[str]) -> list[Varbind]:
            objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
            reply = await bulk_cmd(
                self.engine, auth_data, transport, self._context, non_repeaters, repetitions,
                *objects, lookupMib=False,
            )  # fmt: skip
            return _varbinds(reply)

        return await read_plan(get_oids, bulk, get, walk)

    async def aclose(self) -> None:
        """Close the engine's sockets."""
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    @property
    def engine(self) -> SnmpEngine:
        """The one engine shared by all targets, made on first use inside the loop."""
        if self._engine is None:
            self._engine = SnmpEngine()
        return self._engine

    def _auth_data(self, target: PollTarget) -> CommunityData | UsmUserData:
        creds = target.snmp
        if creds is None:
            raise CodecError(FailureKind.AUTH, "no SNMP credentials configured")
        found = self._auth.get(creds)
        if found is None:
            found = self._auth[creds] = _make_auth(creds)
        return found

    async def _transport(self, target: PollTarget, budget: float) -> UdpTransportTarget:
        key = (target.endpoint.host, target.endpoint.port, budget)
        transport = self._targets.get(key)
        if transport is None:
            # Each attempt gets an equal share of the deadline, so retries end inside it.
            attempt = max(0.05, budget / (self._retries + 1))
            transport = await UdpTransportTarget.create(
                (target.endpoint.host, target.endpoint.port), timeout=attempt, retries=self._retries
            )
            self._targets[key] = transport
        return transport


def _under(oid: str, column: str) -> bool:
    return oid.startswith(column + ".")


def _varbinds(reply: Any) -> list[Varbind]:
    error_indication, error_status, _index, var_binds = reply
    if error_indication:
        raise _codec_error(error_indication)
    if error_status:
        status = str(error_status.prettyPrint() if hasattr(error_status, "prettyPrint") else "")
        kind = FailureKind.AUTH if status in ("authorizationError", "noAccess") else None
        raise CodecError(kind or FailureKind.BAD_REPLY, f"agent answered error {status}")
    return [to_varbind(str(name), value) for name, value in var_binds]


def _codec_error(indication: Any) -> CodecError:
    name = type(indication).__name__
    if isinstance(indication, errind.RequestTimedOut):
        return CodecError(FailureKind.TIMEOUT, "no answer (request timed out)")
    if isinstance(indication, _AUTH_ERRORS):
        return CodecError(FailureKind.AUTH, f"agent rejected our credentials ({name})")
    return CodecError(FailureKind.BAD_REPLY, f"unusable answer ({name})")


def _make_auth(creds: SnmpCredentials) -> CommunityData | UsmUserData:
    if creds.version == "2c":
        # v2c is what most routers offer; v3 is supported below where they do.
        return CommunityData(creds.community, mpModel=1)  # noqa: S508
    auth_name = (creds.auth_protocol or "").upper()
    priv_name = (creds.priv_protocol or "").upper()
    if (auth_name and auth_name not in _AUTH) or (priv_name and priv_name not in _PRIV):
        names = f"{creds.auth_protocol}/{creds.priv_protocol}"
        raise CodecError(FailureKind.AUTH, f"unsupported USM protocols {names}")
    auth_proto = _AUTH.get(auth_name, auth.USM_AUTH_NONE)
    priv_proto = _PRIV.get(priv_name, auth.USM_PRIV_NONE)
    return UsmUserData(
        creds.user,
        authKey=creds.auth_key or None,
        privKey=creds.priv_key or None,
        authProtocol=auth_proto,
        privProtocol=priv_proto,
    )
