"""Agent-side SNMPv3 User-based Security Model (RFC 3414, RFC 3826, RFC 7860).

One `UsmEngine` per emulated router: it checks an incoming v3 message (engine ID, user, digest,
time window, privacy) and either hands back its scopedPDU or a ready Report, exactly the reports
a collector uses to tell "wrong credentials" from "no answer". Keys are derived once per
password and cached (password-to-key hashes one megabyte).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from monitor.emulator import ber
from monitor.model import SnmpCredentials

# name -> (hashlib name, truncated MAC length): RFC 3414 6/7, RFC 7860 4.2.
AUTH_PROTOCOLS: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA-224": ("sha224", 16),
    "SHA-256": ("sha256", 24),
    "SHA-384": ("sha384", 32),
    "SHA-512": ("sha512", 48),
}
PRIV_KEY_SIZES: dict[str, int] = {"AES": 16, "AES-128": 16, "AES-192": 24, "AES-256": 32}

FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
USM_MODEL = 3
MAX_SIZE = 65507
TIME_WINDOW = 150  # seconds, RFC 3414 3.2 step 7
_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
UNSUPPORTED_SEC_LEVELS = (*_STATS, 1, 0)
NOT_IN_TIME_WINDOWS = (*_STATS, 2, 0)
UNKNOWN_USER_NAMES = (*_STATS, 3, 0)
UNKNOWN_ENGINE_IDS = (*_STATS, 4, 0)
WRONG_DIGESTS = (*_STATS, 5, 0)
DECRYPTION_ERRORS = (*_STATS, 6, 0)


@lru_cache(maxsize=256)
def password_to_key(password: bytes, auth_protocol: str) -> bytes:
    """Ku: the hash of the password repeated to one megabyte (RFC 3414 A.2)."""
    if not password:
        raise ValueError("an SNMPv3 pass phrase must not be empty")
    hash_name = AUTH_PROTOCOLS[auth_protocol][0]
    repeated = password * (1_048_576 // len(password) + 1)
    return hashlib.new(hash_name, repeated[:1_048_576]).digest()


@lru_cache(maxsize=65536)
def localize_key(key: bytes, engine_id: bytes, auth_protocol: str) -> bytes:
    """Kul = H(Ku || engineID || Ku) (RFC 3414 A.2.2)."""
    return hashlib.new(AUTH_PROTOCOLS[auth_protocol][0], key + engine_id + key).digest()


def privacy_key(
    password: bytes, engine_id: bytes, auth_protocol: str, priv_protocol: str, extension: str
) -> bytes:
    """A localized AES key, extended when the hash is shorter than the cipher key.

    "blumenthal" (draft-blumenthal-aes-usm-04: Kul || H(Kul) ...) is what net-snmp 5.9 does for
    `-x AES-192/AES-256`; "reeder" (re-run password-to-key on Kul and localize) is pysnmp's
    default for usmAesCfb192/256Protocol and Cisco's. They only differ when extension is needed.
    """
    size = PRIV_KEY_SIZES[priv_protocol]
    hash_name = AUTH_PROTOCOLS[auth_protocol][0]
    key = localize_key(password_to_key(password, auth_protocol), engine_id, auth_protocol)
    while len(key) < size:
        if extension == "blumenthal":
            key += hashlib.new(hash_name, key).digest()
        elif extension == "reeder":
            key += localize_key(password_to_key(key, auth_protocol), engine_id, auth_protocol)
        else:
            raise ValueError(f"unknown AES key extension {extension!r}")
    return key[:size]


@dataclass(frozen=True, slots=True)
class UsmUser:
    """A USM user with keys localized to one engine; secrets are kept out of repr."""

    name: bytes
    auth_protocol: str | None = None
    auth_key: bytes = b""
    priv_protocol: str | None = None
    priv_key: bytes = b""

    def __repr__(self) -> str:
        return f"UsmUser({self.name!r}, {self.auth_protocol}, {self.priv_protocol})"

    @property
    def level(self) -> int:
        """The msgFlags security bits this user works at."""
        return (FLAG_AUTH if self.auth_protocol else 0) | (FLAG_PRIV if self.priv_protocol else 0)

    @classmethod
    def from_credentials(
        cls, credentials: SnmpCredentials, engine_id: bytes, extension: str = "blumenthal"
    ) -> UsmUser:
        """Localize a configured v3 user's pass phrases to `engine_id`."""
        auth, priv = credentials.auth_protocol, credentials.priv_protocol
        if auth is None:
            return cls(credentials.user.encode())
        if auth not in AUTH_PROTOCOLS or (priv is not None and priv not in PRIV_KEY_SIZES):
            raise ValueError(f"unsupported USM protocols: {auth}/{priv}")
        auth_key = localize_key(
            password_to_key(credentials.auth_key.encode(), auth), engine_id, auth
        )
        priv_key = b""
        if priv is not None:
            priv_key = privacy_key(credentials.priv_key.encode(), engine_id, auth, priv, extension)
        return cls(credentials.user.encode(), auth, auth_key, priv, priv_key)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A v3 request that passed USM: its scopedPDU, whom to answer, and whether access is granted.

    `authorized` is False when the request came at a lower security level than the user is
    configured for: net-snmp's VACM then answers authorizationError rather than a Report.
    """

    scoped: ber.ScopedPdu
    user: UsmUser
    flags: int
    authorized: bool = True


@dataclass(frozen=True, slots=True)
class Rejected:
    """A v3 request USM refused: the Report to send back (None: drop silently) and why."""

    report: bytes | None
    reason: str


def _aes(key: bytes, iv: bytes) -> Cipher[CFB]:
    return Cipher(algorithms.AES(key), CFB(iv))


class UsmEngine:
    """The authoritative USM engine of one emulated router."""

    def __init__(self, engine_id: bytes, users: list[UsmUser]) -> None:
        self.engine_id = engine_id
        self.users = {user.name: user for user in users}
        self.stats: dict[ber.Oid, int] = {}
        self._salt = secrets.randbits(64)

    def receive(
        self, message: ber.V3Message, data: bytes, boots: int, now: int, *, spoil: bool = False
    ) -> Accepted | Rejected:
        """Check `message` (decoded from `data`); `spoil` makes every digest wrong (a fault)."""
        if message.security_model != USM_MODEL:
            return Rejected(None, "unknown security model")
        try:
            params, auth_offset = ber.decode_usm(message.security_parameters)
        except ValueError:
            return Rejected(None, "malformed USM parameters")
        flags = message.flags & (FLAG_AUTH | FLAG_PRIV)
        plain = message.data if isinstance(message.data, ber.ScopedPdu) else None
        if flags == FLAG_PRIV or (plain is None) != bool(flags & FLAG_PRIV):
            return Rejected(None, "msgFlags do not match msgData")
        request_id = plain.pdu.request_id if plain is not None else 0

        def report(oid: ber.Oid, reason: str, user: UsmUser | None = None) -> Rejected:
            self.stats[oid] = self.stats.get(oid, 0) + 1
            if not message.flags & FLAG_REPORTABLE:
                return Rejected(None, reason)
            pdu = ber.Pdu(ber.REPORT, request_id, 0, 0, [(oid, ber.COUNTER32, self.stats[oid])])
            scoped = ber.ScopedPdu(self.engine_id, b"", pdu)
            sender = user or UsmUser(params.user)
            sealed = self.seal(message.msg_id, scoped, sender.level & FLAG_AUTH, sender, boots, now)
            return Rejected(sealed, reason)

        if params.engine_id != self.engine_id:
            return report(UNKNOWN_ENGINE_IDS, "unknown engine ID (discovery)")
        user = self.users.get(params.user)
        if user is None or (spoil and user.auth_protocol is None):
            return report(UNKNOWN_USER_NAMES, "unknown user name")
        if flags & ~user.level:
            return report(UNSUPPORTED_SEC_LEVELS, "unsupported security level")
        if flags & FLAG_AUTH:
            assert user.auth_protocol is not None  # guaranteed by the level check
            hash_name, length = AUTH_PROTOCOLS[user.auth_protocol]
            start = message.security_offset + auth_offset
            zeroed = data[:start] + bytes(length) + data[start + length :]
            expected = hmac.digest(user.auth_key, zeroed, hash_name)[:length]
            if (
                spoil
                or len(params.auth) != length
                or not hmac.compare_digest(expected, params.auth)
            ):
                return report(WRONG_DIGESTS, "wrong digest")
            if params.boots != boots or abs(params.time - now) > TIME_WINDOW:
                return report(NOT_IN_TIME_WINDOWS, "not in time window", user)
        if plain is None:
            assert isinstance(message.data, bytes)
            try:
                plain = self._decrypt(user, params, message.data)
            except ValueError:
                return report(DECRYPTION_ERRORS, "decryption error")
        return Accepted(plain, user, flags, authorized=flags == user.level)

    def seal(
        self, msg_id: int, scoped: ber.ScopedPdu, flags: int, user: UsmUser, boots: int, now: int
    ) -> bytes:
        """Encode a response or report at `flags` (auth/priv bits) for `user`."""
        data: ber.ScopedPdu | bytes = scoped
        priv = b""
        if flags & FLAG_PRIV:
            self._salt = (self._salt + 1) & 0xFFFF_FFFF_FFFF_FFFF
            priv = self._salt.to_bytes(8, "big")
            iv = boots.to_bytes(4, "big") + now.to_bytes(4, "big") + priv
            encryptor = _aes(user.priv_key, iv).encryptor()
            data = encryptor.update(ber.encode_scoped_pdu(scoped)) + encryptor.finalize()
        hash_name, length = AUTH_PROTOCOLS[user.auth_protocol or "MD5"]
        length = length if flags & FLAG_AUTH else 0
        params = ber.UsmParameters(self.engine_id, boots, now, user.name, bytes(length), priv)
        usm, auth_offset = ber.encode_usm(params)
        whole, offset = ber.encode_v3(ber.V3Message(msg_id, MAX_SIZE, flags, USM_MODEL, usm, data))
        if not length:
            return whole
        mac = hmac.digest(user.auth_key, whole, hash_name)[:length]
        start = offset + auth_offset
        return whole[:start] + mac + whole[start + length :]

    def _decrypt(self, user: UsmUser, params: ber.UsmParameters, data: bytes) -> ber.ScopedPdu:
        if len(params.priv) != 8:
            raise ValueError("AES privacy parameters must be 8 bytes")
        iv = (params.boots & 0xFFFFFFFF).to_bytes(4, "big")
        iv += (params.time & 0xFFFFFFFF).to_bytes(4, "big") + params.priv
        decryptor = _aes(user.priv_key, iv).decryptor()
        return ber.decode_scoped_pdu(decryptor.update(data) + decryptor.finalize())
