"""CPU cost of the emulated SNMP agent per answered GETBULK (issue 7 runs 100k routers).

Run: .venv/bin/python bench/emulator_snmp.py [rounds]
Measures `Responder.answer` (decode, community/USM check, view lookup, encode) with
time.process_time over a bounded loop, for v2c and for v3 authPriv (SHA-256 + AES-128).
"""

from __future__ import annotations

import sys
import time

from monitor.emulator import ber, usm
from monitor.emulator.life import RouterLife
from monitor.emulator.mibs import build_view
from monitor.emulator.snmp_responder import Responder
from monitor.model import SnmpCredentials

T0 = 1_700_000_000.0
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)


def make_responder(credentials: SnmpCredentials) -> Responder:
    """A router serving the generic IF-MIB view."""
    life = RouterLife.born(
        T0, router_id="bench", model="if-mib", imei="356938035643809", serial="S1", iccid=None
    )
    return Responder(life, build_view("if-mib"), credentials, log_size=16)


def bulk_pdu() -> ber.Pdu:
    """GETBULK of ifTable's in/out octets: 2 columns x 10 repetitions = 20 varbinds asked."""
    oids = [(*IF_TABLE, 10), (*IF_TABLE, 16)]
    return ber.Pdu(ber.GET_BULK, 42, 0, 10, [(oid, ber.NULL, None) for oid in oids])


def measure(label: str, responder: Responder, request: bytes, rounds: int) -> None:
    """Print CPU microseconds per answer."""
    reply = responder.answer(request, T0 + 1)
    assert reply is not None, "the request was not answered"
    start = time.process_time()
    for i in range(rounds):
        responder.answer(request, T0 + 1 + i * 0.001)
    cpu = time.process_time() - start
    print(f"{label}: {cpu / rounds * 1e6:.1f} us CPU per answer ({rounds} answers, {len(reply)} B)")


def main(rounds: int = 5000) -> None:
    """Run the measurements."""
    v2c = make_responder(SnmpCredentials("2c", community="public"))
    request = ber.encode_message(ber.CommunityMessage(ber.V2C, b"public", bulk_pdu()))
    reply = ber.decode_message(v2c.answer(request, T0) or b"")
    assert isinstance(reply, ber.CommunityMessage)
    print(f"varbinds answered per GETBULK: {len(reply.pdu.varbinds)}")
    measure("v2c GETBULK", v2c, request, rounds)

    credentials = SnmpCredentials(
        "3", user="ops", auth_protocol="SHA-256", auth_key="auth-pass-phrase",
        priv_protocol="AES", priv_key="priv-pass-phrase",
    )  # fmt: skip
    start = time.process_time()
    v3 = make_responder(credentials)
    derivation = (time.process_time() - start) * 1e3
    print(f"v3 key derivation (first user, 2 x 1 MB hash): {derivation:.1f} ms")
    start = time.process_time()
    make_responder(credentials)
    print(f"v3 key localization (cached Ku): {(time.process_time() - start) * 1e6:.0f} us")
    # The client side: the same user localized to the router's engine ID.
    client = usm.UsmUser.from_credentials(credentials, v3.engine_id)
    scoped = ber.ScopedPdu(v3.engine_id, b"", bulk_pdu())
    flags = usm.FLAG_AUTH | usm.FLAG_PRIV | usm.FLAG_REPORTABLE
    request_v3 = v3.usm.seal(7, scoped, flags, client, v3.boots, 1)
    measure("v3 authPriv SHA-256/AES GETBULK", v3, request_v3, rounds // 5)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
