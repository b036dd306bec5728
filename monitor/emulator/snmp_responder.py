"""The SNMP brain of one emulated router: a datagram in, a datagram (or silence) out.

No sockets here: `Responder.answer(data, now)` decodes the request, checks the community or USM,
answers GET, GETNEXT and GETBULK from the router's MIB view, refuses SET with notWritable, logs
every message (never a secret) and honours the `wrong_credentials` and `garbage` faults. The
fleet in snmp_agent.py owns the sockets, the delay and the power switch.
"""

from __future__ import annotations

import hmac
import os
from collections import deque
from dataclasses import dataclass

from monitor.emulator import ber
from monitor.emulator.life import RouterLife
from monitor.emulator.mibs import MibView
from monitor.emulator.usm import Rejected, UsmEngine, UsmUser
from monitor.model import SnmpCredentials

PDU_NAMES = {
    ber.GET: "get",
    ber.GET_NEXT: "getnext",
    ber.GET_BULK: "getbulk",
    ber.SET: "set",
    ber.RESPONSE: "response",
    ber.INFORM: "inform",
    ber.TRAP_V2: "trap",
    ber.REPORT: "report",
}
VERSION_NAMES = {ber.V1: "1", ber.V2C: "2c", ber.V3: "3"}
NOT_WRITABLE, NO_SUCH_NAME, TOO_BIG, AUTHORIZATION_ERROR = 17, 2, 1, 16
MAX_VARBINDS = 256  # per answer, so that a greedy GETBULK still fits one datagram
MAX_DATAGRAM = 65507


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One message an emulated router received: never the community or keys."""

    at: float
    version: str  # "1", "2c", "3", or "?" when undecodable
    pdu_type: str  # "get", "getnext", "getbulk", "set", ... or "?" when unreadable
    oids: tuple[ber.Oid, ...]
    is_set: bool
    outcome: str  # "answered", "dropped: wrong community", "report: wrong digest", ...


def engine_id_for(router_id: str) -> bytes:
    """An RFC 3411 text-format engine ID (enterprise 8072, net-snmp's) naming the router."""
    return b"\x80\x00\x1f\x88\x04" + router_id.encode()[:27]


class Responder:
    """Answers SNMP requests for one router from its life and MIB view."""

    def __init__(
        self,
        life: RouterLife,
        view: MibView,
        credentials: SnmpCredentials,
        *,
        engine_id: bytes | None = None,
        log_size: int = 10_000,
        aes_key_extension: str = "blumenthal",
    ) -> None:
        self.life = life
        self.view = view
        self.engine_id = engine_id or engine_id_for(life.router_id)
        self.boots = 1
        self._boot_seen = life.boot_time
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self._community = credentials.community.encode() if credentials.version != "3" else None
        users = [UsmUser.from_credentials(credentials, self.engine_id, aes_key_extension)]
        # A v2c-only router still has an SNMP engine: v3 requests get unknownUserNames reports.
        self.usm = UsmEngine(self.engine_id, users if credentials.version == "3" else [])

    def answer(self, data: bytes, now: float) -> bytes | None:
        """The reply to one datagram received at `now`, or None for silence."""
        self.life.advance(now)
        if self.life.boot_time != self._boot_seen:
            self._boot_seen = self.life.boot_time
            self.boots += 1
        try:
            message = ber.decode_message(data)
        except ValueError as exc:
            self._record(now, "?", None, f"dropped: undecodable ({exc})")
            return None
        if self.life.faults.garbage:
            self._record(now, _version(message), _pdu_of(message), "garbage")
            return _garbage()
        if isinstance(message, ber.CommunityMessage):
            return self._community_answer(message, now)
        return self._v3_answer(message, data, now)

    def _community_answer(self, message: ber.CommunityMessage, now: float) -> bytes | None:
        version = _version(message)
        if self._community is None or not hmac.compare_digest(message.community, self._community):
            self._record(now, version, message.pdu, "dropped: wrong community")
            return None
        if self.life.faults.wrong_credentials:
            self._record(now, version, message.pdu, "dropped: wrong credentials (fault)")
            return None
        response = self._process(message.pdu, message.version, now)
        if response is None:
            self._record(now, version, message.pdu, "dropped: not a request")
            return None
        reply = ber.encode_message(
            ber.CommunityMessage(message.version, message.community, response)
        )
        if len(reply) > MAX_DATAGRAM:
            reply = ber.encode_message(
                ber.CommunityMessage(message.version, message.community, _too_big(response))
            )
        self._record(now, version, message.pdu, "answered")
        return reply

    def _v3_answer(self, message: ber.V3Message, data: bytes, now: float) -> bytes | None:
        engine_time = int(self.life.uptime(now))
        spoil = self.life.faults.wrong_credentials
        verdict = self.usm.receive(message, data, self.boots, engine_time, spoil=spoil)
        if isinstance(verdict, Rejected):
            plain = message.data if isinstance(message.data, ber.ScopedPdu) else None
            kind = "report" if verdict.report is not None else "dropped"
            self._record(now, "3", plain.pdu if plain else None, f"{kind}: {verdict.reason}")
            return verdict.report
        request = verdict.scoped.pdu
        response: ber.Pdu | None
        if verdict.authorized:
            response = self._process(request, ber.V3, now)
        else:
            response = ber.Pdu(ber.RESPONSE, request.request_id, AUTHORIZATION_ERROR, 0, [])
            response.varbinds = request.varbinds
        if response is None:
            self._record(now, "3", request, "dropped: not a request")
            return None
        scoped = ber.ScopedPdu(
            verdict.scoped.context_engine_id, verdict.scoped.context_name, response
        )
        seal = self.usm.seal
        reply = seal(message.msg_id, scoped, verdict.flags, verdict.user, self.boots, engine_time)
        if len(reply) > min(message.max_size, MAX_DATAGRAM):
            scoped.pdu = _too_big(response)
            reply = seal(
                message.msg_id, scoped, verdict.flags, verdict.user, self.boots, engine_time
            )
        outcome = "answered" if verdict.authorized else "answered: authorizationError"
        self._record(now, "3", request, outcome)
        return reply

    def _process(self, pdu: ber.Pdu, version: int, now: float) -> ber.Pdu | None:
        """The Response to a GET, GETNEXT, GETBULK or SET; None for anything else."""
        life, view, v1 = self.life, self.view, version == ber.V1
        if pdu.tag == ber.GET:
            binds = [view.get(oid, life, now) for oid, _, _ in pdu.varbinds]
        elif pdu.tag == ber.GET_NEXT:
            binds = [self._next(view.next_index(oid), oid, v1, now) for oid, _, _ in pdu.varbinds]
        elif pdu.tag == ber.GET_BULK and not v1:
            binds = self._bulk(pdu, now)
        elif pdu.tag == ber.SET:
            # Read-only: notWritable (v1 has no such status: noSuchName, RFC 2576 4.3).
            status = NO_SUCH_NAME if v1 else NOT_WRITABLE
            index = 1 if pdu.varbinds else 0
            return ber.Pdu(ber.RESPONSE, pdu.request_id, status, index, pdu.varbinds)
        else:
            return None
        if v1:
            # SNMPv1 has no exception values: the first one becomes noSuchName.
            for position, (_, tag, _) in enumerate(binds, 1):
                if tag in (ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE, ber.END_OF_MIB_VIEW):
                    return ber.Pdu(
                        ber.RESPONSE, pdu.request_id, NO_SUCH_NAME, position, pdu.varbinds
                    )
        return ber.Pdu(ber.RESPONSE, pdu.request_id, 0, 0, binds)

    def _next(self, index: int, oid: ber.Oid, v1: bool, now: float) -> ber.VarBind:
        view = self.view
        while index < len(view):
            bind = view.at(index, self.life, now)
            if not (v1 and bind[1] == ber.COUNTER64):  # Counter64 is invisible to v1
                return bind
            index += 1
        return oid, ber.END_OF_MIB_VIEW, None

    def _bulk(self, pdu: ber.Pdu, now: float) -> list[ber.VarBind]:
        view, life, end = self.view, self.life, len(self.view)
        requested = [oid for oid, _, _ in pdu.varbinds]
        non_repeaters = min(max(pdu.error_status, 0), len(requested))
        binds = [
            self._next(view.next_index(oid), oid, False, now) for oid in requested[:non_repeaters]
        ]
        last = requested[non_repeaters:]
        positions = [view.next_index(oid) for oid in last]
        for _ in range(max(pdu.error_index, 0) if last else 0):
            if len(binds) + len(last) > MAX_VARBINDS:
                break
            for column, position in enumerate(positions):
                if position < end:
                    bind = view.at(position, life, now)
                    last[column] = bind[0]
                    positions[column] = position + 1
                    binds.append(bind)
                else:
                    binds.append((last[column], ber.END_OF_MIB_VIEW, None))
            if min(positions) >= end:
                break  # every column ran off the end: further rows would only repeat that
        return binds

    def _record(self, now: float, version: str, pdu: ber.Pdu | None, outcome: str) -> None:
        pdu_type = PDU_NAMES.get(pdu.tag, "?") if pdu is not None else "?"
        oids = tuple(oid for oid, _, _ in pdu.varbinds) if pdu is not None else ()
        self.log.append(RequestRecord(now, version, pdu_type, oids, pdu_type == "set", outcome))


def _version(message: ber.CommunityMessage | ber.V3Message) -> str:
    return "3" if isinstance(message, ber.V3Message) else VERSION_NAMES[message.version]


def _pdu_of(message: ber.CommunityMessage | ber.V3Message) -> ber.Pdu | None:
    if isinstance(message, ber.CommunityMessage):
        return message.pdu
    return message.data.pdu if isinstance(message.data, ber.ScopedPdu) else None


def _too_big(response: ber.Pdu) -> ber.Pdu:
    return ber.Pdu(ber.RESPONSE, response.request_id, TOO_BIG, 0, [])


def _garbage() -> bytes:
    """Random bytes that never start a SEQUENCE, so no decoder can mistake them for SNMP."""
    noise = bytearray(os.urandom(1 + os.urandom(1)[0] % 64))
    noise[0] = noise[0] if noise[0] != ber.SEQUENCE else 0xFF
    return bytes(noise)
