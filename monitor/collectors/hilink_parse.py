"""Pure parsing of HiLink web API replies, and their mapping onto a Sample through a profile.

Replies are XML, `<response>...</response>` on success and `<error><code>N</code>...</error>`
on failure, both with HTTP 200. Parsing goes through defusedxml with DTDs forbidden, so an
entity bomb or an external entity is a `MalformedReply`, never an expansion. Values are strings
with units (`-98dBm`, `>=-51dBm`, `-11dB`); an empty element means "not reported".
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # types and ParseError only: parsing goes through defusedxml
from collections.abc import Mapping
from datetime import datetime

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from monitor.errors import MonitorError
from monitor.model import (
    Counter,
    CounterType,
    Identity,
    LinkState,
    Sample,
    Signal,
    SimState,
    Traffic,
    UptimeClock,
)
from monitor.profiles_hilink import FieldName, HilinkProfile

Elements = Mapping[str, str | None]
"""The children of one `<response>`: element name -> text (None when empty)."""
Codes = Mapping[str, str | bool | None]

_LEVEL_RE = re.compile(r"^(?:[<>]=?)?\s*([-+]?\d+(?:\.\d+)?)\s*(?:dBm|dB|%)?$", re.IGNORECASE)
_CSRF_RE = re.compile(r"""<meta\s+name=["']csrf_token["']\s+content=["']([^"'\s]+)["']""")
_NOT_REPORTED = frozenset({"", "--", "n/a", "unknown", "null"})


class MalformedReply(MonitorError):
    """A reply that is not a HiLink XML document we can read (the reason holds no secret)."""


class HilinkErrorReply(MonitorError):
    """A well-formed `<error>` reply: the device's numeric code."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"HiLink error {code}")


def parse_reply(body: bytes) -> dict[str, str | None]:
    """The elements of a `<response>`; HilinkErrorReply for `<error>`, else MalformedReply."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedReply(f"not XML ({type(exc).__name__})") from None
    if root.tag == "error":
        code = (root.findtext("code") or "").strip()
        if not code.lstrip("-").isdigit():
            raise MalformedReply("error reply without a numeric code")
        raise HilinkErrorReply(int(code))
    if root.tag != "response":
        raise MalformedReply(f"unexpected root element <{root.tag[:40]}>")
    return {child.tag: _text(child) for child in root}


def parse_csrf_meta(html: str) -> str | None:
    """The first `<meta name="csrf_token" content=...>` token of the home page, or None."""
    match = _CSRF_RE.search(html)
    return match.group(1) if match else None


def parse_ses_tok_info(elements: Elements) -> tuple[str, str]:
    """(session id, token) from a /api/webserver/SesTokInfo reply."""
    session = elements.get("SesInfo") or ""
    token = elements.get("TokInfo") or ""
    session = session.removeprefix("SessionID=")
    if not session or not token:
        raise MalformedReply("SesTokInfo without SesInfo and TokInfo")
    return session, token


def parse_level(text: str | None) -> float | None:
    """A signal level such as `-98dBm`, `>=-51dBm` or `-11.5dB` as a number; None if absent."""
    if text is None or text.strip().lower() in _NOT_REPORTED:
        return None
    match = _LEVEL_RE.fullmatch(text.strip())
    if match is None:
        raise MalformedReply(f"not a signal level: {text[:20]!r}")
    return float(match.group(1))


def parse_count(text: str | None) -> int | None:
    """A non-negative integer (bytes, seconds, percent); None if not reported."""
    if text is None or text.strip().lower() in _NOT_REPORTED:
        return None
    value = text.strip()
    if not value.isdigit():
        raise MalformedReply(f"not a count: {value[:20]!r}")
    return int(value)


def build_sample(
    profile: HilinkProfile, router_id: str, at: datetime, replies: Mapping[str, Elements]
) -> Sample:
    """The Sample the replies (endpoint name -> elements) describe, read through `profile`."""
    read = _Reader(profile, replies)
    uptime = read.count("uptime")
    received, sent = read.count("received"), read.count("sent")
    return Sample(
        router_id=router_id,
        at=at,
        sim=SimState(read.coded("sim") or SimState.UNKNOWN),
        link=LinkState(read.coded("link") or LinkState.UNKNOWN),
        network_type=read.text("network_type"),
        signal=Signal(
            rssi_dbm=read.level("rssi_dbm"),
            rsrp_dbm=read.level("rsrp_dbm"),
            rsrq_db=read.level("rsrq_db"),
            sinr_db=read.level("sinr_db"),
        ),
        battery_percent=read.count("battery_percent"),
        charging=read.flag("charging"),
        uptime_seconds=None if uptime is None else float(uptime),
        uptime_clock=None if uptime is None else UptimeClock.DEVICE,
        identity=Identity(
            imei=read.text("imei"),
            iccid=read.text("iccid"),
            imsi=read.text("imsi"),
            serial=read.text("serial"),
            model=read.text("model"),
            firmware=read.text("firmware"),
        ),
        traffic=Traffic(
            received=None if received is None else Counter(received, CounterType.DEVICE),
            sent=None if sent is None else Counter(sent, CounterType.DEVICE),
            month_received=read.count("month_received"),
            month_sent=read.count("month_sent"),
            month_cleared=read.text("month_cleared"),
        ),
    )


class _Reader:
    """Reads one field from the first of its sources that yields a value."""

    def __init__(self, profile: HilinkProfile, replies: Mapping[str, Elements]) -> None:
        self._profile = profile
        self._replies = replies

    def _raw(self, field: FieldName) -> list[tuple[str, Codes | None]]:
        found: list[tuple[str, Codes | None]] = []
        for source in self._profile.sources(field):
            value = self._replies.get(source.endpoint, {}).get(source.element)
            if value is not None and value.strip().lower() not in _NOT_REPORTED:
                found.append((value.strip(), source.map))
        return found

    def coded(self, field: FieldName) -> str | None:
        """A state name through the sources' code tables; None if no code is known."""
        for raw, codes in self._raw(field):
            mapped = (codes or {}).get(raw)
            if isinstance(mapped, str):
                return mapped
        return None

    def text(self, field: FieldName) -> str | None:
        """Text as sent, or through a code table where the source has one."""
        for raw, codes in self._raw(field):
            if codes is None:
                return raw
            mapped = codes.get(raw)
            if isinstance(mapped, str):
                return mapped
        return None

    def flag(self, field: FieldName) -> bool | None:
        """A true/false code; None if not reported or unknown."""
        for raw, codes in self._raw(field):
            mapped = (codes or {}).get(raw)
            if isinstance(mapped, bool):
                return mapped
        return None

    def count(self, field: FieldName) -> int | None:
        """A non-negative integer from the first source that reports one."""
        for raw, _ in self._raw(field):
            return parse_count(raw)
        return None

    def level(self, field: FieldName) -> float | None:
        """A signal level from the first source that reports one."""
        for raw, _ in self._raw(field):
            return parse_level(raw)
        return None


def _text(element: ET.Element) -> str | None:
    text = (element.text or "").strip()
    return text or None
