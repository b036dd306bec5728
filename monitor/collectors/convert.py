"""Pure conversions from SNMP varbinds to a `Sample`, driven by an `SnmpProfile`.

No I/O and no clock: `build_sample(profile, varbinds, router_id, at)` is a function of its
arguments, tested on recorded replies in tests/fixtures/<model>/. A value that is missing, of a
type the field cannot use, or a placeholder the profile calls unavailable becomes None ("not
reported"), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.model import (
    Counter,
    CounterType,
    Identity,
    LinkState,
    Sample,
    Signal,
    SimState,
    Traffic,
)
from monitor.profiles import FieldSpec, SnmpProfile, TableSpec

# Wire type names, as pysnmp and the SNMP SMI spell them.
INTEGER_TYPES = frozenset({"Integer32", "Integer", "Gauge32", "Unsigned32", "Counter32"})
NUMBER_TYPES = INTEGER_TYPES | {"Counter64", "TimeTicks"}
ABSENT_TYPES = frozenset({"noSuchObject", "noSuchInstance", "endOfMibView", "Null"})
_COUNTER_TYPES = {
    "Counter32": CounterType.COUNTER32,
    "Counter64": CounterType.COUNTER64,
    "Integer32": CounterType.INTEGER32,
    "Integer": CounterType.INTEGER32,
    "Gauge32": CounterType.COUNTER32,
    "Unsigned32": CounterType.COUNTER32,
}
_NUMBER_RE = re.compile(r"^\s*(?:[<>]=?|=)?\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z%]*)\s*$")


@dataclass(frozen=True, slots=True)
class Varbind:
    """One OID and its value as the wire carried it: `kind` is the SNMP type name."""

    oid: str
    kind: str
    value: int | bytes | None = None


Varbinds = Mapping[str, Varbind]


def to_unsigned32(value: int) -> int:
    """A signed 32-bit reading as the unsigned value it encodes (-1835401583 -> 2459565713)."""
    return value & 0xFFFFFFFF


def number_from_text(text: str) -> float | None:
    """A number from text such as '-98dBm', '>=-51dBm', '12.5 dB' or '42'; None otherwise."""
    found = _NUMBER_RE.match(text)
    return float(found.group(1)) if found else None


def as_text(varbind: Varbind | None) -> str | None:
    """A varbind's value as stripped text; None if absent, empty or undecodable."""
    if varbind is None or varbind.kind in ABSENT_TYPES or varbind.value is None:
        return None
    if isinstance(varbind.value, int):
        return str(varbind.value) if varbind.kind in NUMBER_TYPES else None
    try:
        text = varbind.value.decode("utf-8").strip().strip("\x00")
    except UnicodeDecodeError:
        return None
    return text or None


def as_number(varbind: Varbind | None, spec: FieldSpec) -> float | None:
    """A numeric reading after placeholders, unsigned and scale; None if not usable."""
    if varbind is None or varbind.kind in ABSENT_TYPES:
        return None
    raw: float | None
    if isinstance(varbind.value, int) and varbind.kind in NUMBER_TYPES:
        raw = varbind.value
    else:
        text = as_text(varbind)
        if text is None or text in spec.unavailable:
            return None
        raw = number_from_text(text)
    if raw is None or raw in spec.unavailable:
        return None
    if spec.unsigned32 and isinstance(raw, int):
        raw = to_unsigned32(raw)
    scale = 0.01 if varbind.kind == "TimeTicks" and spec.scale == 1.0 else spec.scale
    return raw * scale if scale != 1.0 else raw


def as_counter(varbind: Varbind | None, spec: FieldSpec) -> Counter | None:
    """A cumulative byte counter, made unsigned, typed from the wire unless the profile says."""
    if varbind is None or not isinstance(varbind.value, int):
        return None
    if varbind.kind not in _COUNTER_TYPES or varbind.value in spec.unavailable:
        return None
    kind = _COUNTER_TYPES[varbind.kind] if spec.counter == "auto" else spec.counter
    value = varbind.value
    if value < 0 or kind is CounterType.INTEGER32:
        value = to_unsigned32(value)
    return Counter(value, kind)


def as_state(varbind: Varbind | None, spec: FieldSpec) -> str | None:
    """The mapped state name for a string or integer state; None if unknown or absent."""
    if varbind is None or varbind.kind in ABSENT_TYPES or varbind.value is None:
        return None
    if isinstance(varbind.value, int):
        return spec.lookup(varbind.value)
    text = as_text(varbind)
    return spec.lookup(text) if text is not None else None


def first_row(column: str, varbinds: Varbinds) -> str | None:
    """The lowest row index present under `column` (the first row of a table column)."""
    prefix = column + "."
    indices = [oid[len(prefix) :] for oid, vb in varbinds.items() if oid.startswith(prefix)]
    indices = [index for index in indices if varbinds[prefix + index].kind not in ABSENT_TYPES]
    return min(indices, key=_oid_key) if indices else None


def matching_row(table: TableSpec, varbinds: Varbinds) -> str | None:
    """The first row (in index order) whose `index_column` text matches the table's regex."""
    if table.index_column is None or table.match is None:
        return None
    prefix = table.index_column + "."
    pattern = re.compile(table.match)
    rows = sorted((oid[len(prefix) :] for oid in varbinds if oid.startswith(prefix)), key=_oid_key)
    for index in rows:
        text = as_text(varbinds[prefix + index])
        if text is not None and pattern.search(text):
            return index
    return None


def choose_rows(profile: SnmpProfile, varbinds: Varbinds) -> dict[str, str | None]:
    """For each table the row to read: matched rows from walked index columns."""
    rows: dict[str, str | None] = {}
    for name, table in profile.tables.items():
        if table.row == "match":
            rows[name] = matching_row(table, varbinds)
    return rows


def field_oids(spec: FieldSpec, rows: Mapping[str, str | None], varbinds: Varbinds) -> list[str]:
    """The instance OIDs to read for a field, best first ([] when its row is unknown)."""
    oids = [spec.oid, *spec.fallback]
    if spec.table is None:
        return oids
    if spec.table in rows:
        row = rows[spec.table]
        return [] if row is None else [f"{oid}.{row}" for oid in oids]
    found = (first_row(oid, varbinds) for oid in oids)
    return [f"{oid}.{index}" for oid, index in zip(oids, found, strict=True) if index]


def pick(spec: FieldSpec, rows: Mapping[str, str | None], varbinds: Varbinds) -> Varbind | None:
    """The first reported varbind among a field's OID and fallbacks."""
    for oid in field_oids(spec, rows, varbinds):
        varbind = varbinds.get(oid)
        if varbind is not None and varbind.kind not in ABSENT_TYPES:
            return varbind
    return None


def _oid_key(index: str) -> tuple[int, ...]:
    return tuple(int(part) for part in index.split(".") if part.isdigit())


def build_sample(
    profile: SnmpProfile, varbinds: Sequence[Varbind] | Varbinds, router_id: str, at: datetime
) -> Sample:
    """The Sample a reply carries under `profile`; what is missing stays None or unknown."""
    table = varbinds if isinstance(varbinds, Mapping) else {vb.oid: vb for vb in varbinds}
    rows = choose_rows(profile, table)
    fields: dict[str, FieldSpec] = dict(profile.fields.items())

    def vb(name: str) -> Varbind | None:
        spec = fields.get(name)
        return pick(spec, rows, table) if spec is not None else None

    def number(name: str) -> float | None:
        spec = fields.get(name)
        return as_number(vb(name), spec) if spec is not None else None

    def text(name: str) -> str | None:
        spec = fields.get(name)
        raw = as_text(vb(name))
        if raw is None or spec is None:
            return raw
        return spec.lookup(raw) or raw

    def state(name: str) -> str | None:
        spec = fields.get(name)
        return as_state(vb(name), spec) if spec is not None else None

    def counter(name: str) -> Counter | None:
        spec = fields.get(name)
        return as_counter(vb(name), spec) if spec is not None else None

    def month(name: str) -> int | None:
        value = number(name)
        return int(value) if value is not None and value >= 0 else None

    battery = number("battery_percent")
    charging = state("charging")
    uptime_spec = fields.get("uptime")
    uptime = number("uptime")
    return Sample(
        router_id=router_id,
        at=at,
        sim=SimState(state("sim") or SimState.UNKNOWN),
        link=LinkState(state("link") or LinkState.UNKNOWN),
        network_type=text("network_type"),
        signal=Signal(number("rssi_dbm"), number("rsrp_dbm"), number("rsrq_db"), number("sinr_db")),
        battery_percent=round(battery) if battery is not None else None,
        charging=None if charging is None else charging == "true",
        uptime_seconds=uptime,
        uptime_clock=uptime_spec.clock if uptime is not None and uptime_spec else None,
        identity=Identity(
            imei=text("imei"),
            iccid=text("iccid"),
            imsi=text("imsi"),
            serial=text("serial"),
            model=text("model"),
            firmware=text("firmware"),
        ),
        traffic=Traffic(
            received=counter("received"),
            sent=counter("sent"),
            month_received=month("month_received"),
            month_sent=month("month_sent"),
        ),
    )


def reports_any(profile: SnmpProfile, varbinds: Varbinds, names: Iterable[str]) -> bool:
    """Whether the reply holds a usable varbind for any of the profile's fields `names` (it
    stops at the first: on every poll, with the required fields)."""
    rows = choose_rows(profile, varbinds)
    fields = profile.fields
    return any(name in fields and pick(fields[name], rows, varbinds) for name in names)
