"""The schema of a HiLink (Huawei web API) model profile in config/profiles/.

A profile names the read endpoints to fetch and, for each canonical Sample field, the elements
that feed it in order of preference (the first one that yields a value wins). An operator adds a
HiLink variant by writing such a file; the paths are limited to the read endpoints below, which
the collector re-checks against its own allow-list before any request. Example::

    name: huawei-hilink
    protocol: hilink
    endpoints:
      status: {path: /api/monitoring/status}
      pin: {path: /api/pin/status, optional: true}
    fields:
      sim:
        - {endpoint: pin, element: SimState, map: {"257": ready, "255": absent}}
        - {endpoint: status, element: SimStatus, map: {"1": ready, "255": absent}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.model import LinkState, SimState

ReadPath = Literal[
    "/api/monitoring/status",
    "/api/pin/status",
    "/api/monitoring/month_statistics",
    "/api/monitoring/traffic-statistics",
    "/api/device/information",
    "/api/device/signal",
    "/api/device/basic_information",
    "/api/net/current-plmn",
]
"""The read endpoints a profile may name: each only reads, on every known firmware."""

FieldName = Literal[
    "sim", "link", "network_type", "rssi_dbm", "rsrp_dbm", "rsrq_db", "sinr_db",
    "battery_percent", "charging", "uptime", "imei", "iccid", "imsi", "serial", "model",
    "firmware", "received", "sent", "month_received", "month_sent", "month_cleared",
]  # fmt: skip
"""The canonical Sample fields (the SNMP profiles' names plus `month_cleared`)."""

_ELEMENT = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_BOOLEAN_FIELDS = frozenset({"charging"})
_STATE_FIELDS: dict[str, frozenset[str]] = {
    "sim": frozenset(member.value for member in SimState),
    "link": frozenset(member.value for member in LinkState),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HilinkEndpoint(_Strict):
    """One read endpoint; an optional one may answer 100002 (or 100003 with no login)."""

    path: ReadPath
    optional: bool = False


class HilinkSource(_Strict):
    """One element of one endpoint feeding a field, with its code table where it has one.

    `map` turns a raw code into the field's value (a SimState or LinkState name, `true` or
    `false` for `charging`, a text for `network_type`; null means "not reported"). An unmapped
    code falls through to the next source.
    """

    endpoint: str
    element: str = Field(pattern=_ELEMENT)
    map: dict[str, str | bool | None] | None = None

    @field_validator("map", mode="before")
    @classmethod
    def _codes_as_text(cls, value: object) -> object:
        # Codes are compared as the text the device sends; an unquoted YAML key reads as int.
        if isinstance(value, dict):
            return {str(key) if isinstance(key, int) else key: item for key, item in value.items()}
        return value


class HilinkProfile(_Strict):
    """A HiLink model profile: which read endpoints to fetch and how fields map to a Sample."""

    name: str
    protocol: Literal["hilink"]
    description: str = ""
    endpoints: dict[str, HilinkEndpoint] = Field(min_length=1)
    fields: dict[FieldName, tuple[HilinkSource, ...]] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> HilinkProfile:
        problems: list[str] = []
        if all(endpoint.optional for endpoint in self.endpoints.values()):
            problems.append("endpoints: at least one endpoint must not be optional")
        paths = [endpoint.path for endpoint in self.endpoints.values()]
        if len(set(paths)) != len(paths):
            problems.append("endpoints: each path may be named once")
        for field, sources in self.fields.items():
            if not sources:
                problems.append(f"fields.{field}: name at least one source")
            for index, source in enumerate(sources):
                problems.extend(_source_problems(f"fields.{field}[{index}]", field, source, self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def sources(self, field: FieldName) -> tuple[HilinkSource, ...]:
        """The sources of `field` in order of preference (none if the profile omits it)."""
        return self.fields.get(field, ())


def _source_problems(
    where: str, field: str, source: HilinkSource, profile: HilinkProfile
) -> list[str]:
    problems = []
    if source.endpoint not in profile.endpoints:
        problems.append(f"{where}.endpoint: no endpoint {source.endpoint!r} under endpoints")
    states = _STATE_FIELDS.get(field)
    if states is not None and source.map is None:
        problems.append(f"{where}.map: {field} needs a code table")
    for raw, mapped in (source.map or {}).items():
        if mapped is None:
            continue
        if states is not None and mapped not in states:
            problems.append(f"{where}.map.{raw}: must be one of {', '.join(sorted(states))}")
        elif field in _BOOLEAN_FIELDS and not isinstance(mapped, bool):
            problems.append(f"{where}.map.{raw}: must be true or false")
        elif field not in _BOOLEAN_FIELDS and isinstance(mapped, bool):
            problems.append(f"{where}.map.{raw}: must be text, not true or false")
    return problems
