"""Model profiles in config/profiles/: which OIDs (or web endpoints) a model answers on.

`load_profiles(directory)` reads every `*.yaml` file there, validates it like the main config
(every problem of every file in one `ConfigError`, each with its file and key path) and returns
the profiles by name (the file stem). `protocol: snmp` files become `SnmpProfile`s, defined here;
`protocol: hilink` files become `monitor.profiles_hilink.HilinkProfile`s. The format is
documented in docs/profiles.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from monitor.config_report import describe_errors
from monitor.errors import ConfigError, Problem
from monitor.model import CounterType, LinkState, SimState, UptimeClock
from monitor.profiles_hilink import HilinkProfile

_OID_RE = re.compile(r"^\.?[0-2](\.\d+)+$")

FieldName = Literal[
    "sim", "link", "network_type", "rssi_dbm", "rsrp_dbm", "rsrq_db", "sinr_db",
    "battery_percent", "charging", "uptime", "imei", "iccid", "imsi", "serial", "model",
    "firmware", "received", "sent", "month_received", "month_sent",
]  # fmt: skip
_STATE_ENUMS: dict[str, type[SimState] | type[LinkState]] = {"sim": SimState, "link": LinkState}


def _oid(value: Any) -> Any:
    if not isinstance(value, str) or not _OID_RE.fullmatch(value.strip()):
        raise ValueError("must be a numeric OID such as 1.3.6.1.2.1.1.3.0")
    return value.strip().lstrip(".")


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


def _regex(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a regular expression (text)")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


Oid = Annotated[str, BeforeValidator(_oid)]
Regex = Annotated[str, BeforeValidator(_regex)]
Number = Annotated[float, BeforeValidator(_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Strict):
    """How a table's row is chosen: its first row, or the row whose `index_column` matches."""

    row: Literal["first", "match"] = "first"
    index_column: Oid | None = None
    match: Regex | None = None

    @model_validator(mode="after")
    def _match_complete(self) -> TableSpec:
        if self.row == "match" and (self.index_column is None or self.match is None):
            raise ValueError("row: match needs index_column and match")
        if self.row == "first" and (self.index_column or self.match):
            raise ValueError("index_column and match only apply to row: match")
        return self


class FieldSpec(_Strict):
    """Where one canonical field is read and how its raw value is converted."""

    oid: Oid
    fallback: tuple[Oid, ...] = ()  # tried in order when `oid` is not reported
    table: str | None = None  # a column read at the table's chosen row; else a full instance
    map: dict[str | int, str] = Field(default_factory=dict)
    scale: Number = 1.0
    unsigned32: bool = False  # a signed Integer32 that really is an unsigned 32-bit value
    unavailable: tuple[float | str, ...] = ()
    counter: CounterType | Literal["auto"] = "auto"
    clock: UptimeClock = UptimeClock.DEVICE

    def lookup(self, raw: str | int) -> str | None:
        """The mapped value for a raw state (strings compared without case), or None."""
        key: str | int = raw.strip().lower() if isinstance(raw, str) else raw
        found = self.map.get(key)
        if found is None and isinstance(key, str) and key.lstrip("-").isdigit():
            found = self.map.get(int(key))
        return found


class SnmpProfile(_Strict):
    """An SNMP model profile: canonical Sample fields mapped onto OIDs and conversions."""

    name: str
    protocol: Literal["snmp"]
    description: str = ""
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    fields: dict[FieldName, FieldSpec]
    required: tuple[FieldName, ...] = ()  # the agent is "unsupported" if none of these is reported

    @property
    def required_fields(self) -> tuple[str, ...]:
        """The fields at least one of which an agent must report (default: all of them)."""
        return self.required or tuple(self.fields)


Profile = SnmpProfile | HilinkProfile


def load_profiles(directory: Path) -> dict[str, Profile]:
    """Read and validate every profile file in `directory`; raise ConfigError with all problems."""
    profiles: dict[str, Profile] = {}
    problems: list[Problem] = []
    paths = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not paths:
        raise ConfigError(str(directory), [Problem("", "holds no profile files (*.yaml)")])
    for path in paths:
        profile, found = _load_one(path)
        problems.extend(found)
        if profile is not None:
            profiles[path.stem] = profile
    if problems:
        raise ConfigError(str(directory), problems)
    return profiles


def _cross_check(source: str, profile: SnmpProfile) -> list[Problem]:
    """Problems between keys of a valid profile: tables, state names, required fields."""
    problems = []
    if not profile.fields:
        problems.append(Problem(f"{source}: fields", "must name at least one field"))
    for name, spec in profile.fields.items():
        if spec.table is not None and spec.table not in profile.tables:
            reason = f"no table {spec.table!r} under tables"
            problems.append(Problem(f"{source}: fields.{name}.table", reason))
        enum = _STATE_ENUMS.get(name)
        for raw, mapped in spec.map.items():
            where = f"{source}: fields.{name}.map.{raw}"
            if enum is not None and mapped not in {member.value for member in enum}:
                known = ", ".join(member.value for member in enum)
                problems.append(Problem(where, f"must be one of {known}"))
            if name == "charging" and mapped not in ("true", "false"):
                problems.append(Problem(where, "must be true or false"))
    problems.extend(
        Problem(f"{source}: required", f"{name!r} is not under fields")
        for name in profile.required
        if name not in profile.fields
    )
    return problems


def _load_one(path: Path) -> tuple[Profile | None, list[Problem]]:
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [Problem(source, f"cannot read the file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem(source, "is not UTF-8 text")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return None, [Problem(source + where, "invalid YAML")]
    if not isinstance(data, dict):
        return None, [Problem(source, "must be a YAML mapping of keys")]
    problems: list[Problem] = []
    if data.get("name", path.stem) != path.stem:
        problems.append(Problem(f"{source}: name", f"must match the file name ({path.stem!r})"))
    data.setdefault("name", path.stem)
    protocol = data.get("protocol")
    schema: type[SnmpProfile] | type[HilinkProfile]
    if protocol == "snmp":
        schema = SnmpProfile
    elif protocol == "hilink":
        schema = HilinkProfile
    else:
        problems.append(Problem(f"{source}: protocol", "must be one of 'snmp', 'hilink'"))
        return None, problems
    try:
        profile = schema.model_validate(data)
    except ValidationError as exc:
        for problem in describe_errors(exc, data, {}, schema):
            where = f"{source}: {problem.where}" if problem.where else source
            problems.append(Problem(where, problem.reason))
        return None, problems
    if isinstance(profile, SnmpProfile):
        problems.extend(_cross_check(source, profile))
    return (None if problems else profile), problems
