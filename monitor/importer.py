"""CSV import of organisations and devices: every row is checked before anything is stored.

A file is imported as a whole or not at all. Every problem found is reported at once, as
"line 7, column imei: ..." with line numbers as an editor shows them (the header is line 1), so
that an operator can fix the file in one go. The CLI opens the file (UTF-8, newline=''); this
module only reads the lines it is given. The columns are described in docs/inventory-import.md.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from monitor.errors import ImportRejected, Problem
from monitor.model import (
    DEFAULT_PORTS,
    Allocation,
    Device,
    DeviceKind,
    DeviceStatus,
    Endpoint,
    Organisation,
    OrganisationKind,
    Protocol,
    Router,
    iccid_problem,
    identifier_problem,
    imei_problem,
    order_term_problem,
    parent_problem,
)
from monitor.store import Inventory, UpsertResult
from monitor.store.bulk import Progress

ORGANISATION_COLUMNS = ("id", "name", "kind", "parent")
ORGANISATION_REQUIRED = ("id", "name", "kind")
DEVICE_COLUMNS = (
    "serial", "kind", "organisation", "order_number", "imei", "allocation", "order_term",
    "status", "iccid", "router_id", "protocol", "host", "port", "profile",
)  # fmt: skip
DEVICE_REQUIRED = ("serial", "kind", "organisation", "order_number")
ROUTER_ONLY = ("iccid", "router_id", "protocol", "host", "port", "profile")
ENDPOINT = ("protocol", "host", "port", "profile")

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_E = TypeVar("_E", bound=StrEnum)


@dataclass
class _Rows:
    """The data rows of one file, and the problems found so far as (line, problem)."""

    source: str
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[tuple[int, Problem]] = field(default_factory=list)

    def problem(self, line: int, column: str | None, reason: str) -> None:
        where = f"line {line}, column {column}" if column else f"line {line}"
        self.problems.append((line, Problem(where, reason)))

    def reject_if_any(self) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda item: item[0])  # stable: keeps columns
            raise ImportRejected(self.source, [problem for _, problem in ordered])


def import_organisations(
    rows: Iterable[str],
    inventory: Inventory,
    progress: Progress | None = None,
    *,
    source: str = "<input>",
) -> UpsertResult:
    """Check an organisations CSV file (id,name,kind,parent) whole, then upsert it in one go."""
    data = _read(rows, source, ORGANISATION_COLUMNS, ORGANISATION_REQUIRED)
    kinds: dict[str, OrganisationKind] = {}
    first_line: dict[str, int] = {}
    for line, values in data.records:
        org_id, kind = values["id"], _enum(data, line, "kind", OrganisationKind, values["kind"])
        if _valid_id(data, line, "id", org_id) and kind is not None:
            kinds.setdefault(org_id, kind)
        if org_id in first_line:
            data.problem(line, "id", f"{org_id} is already on line {first_line[org_id]}")
        elif org_id:
            first_line[org_id] = line
        if len(values["name"]) > 200:
            data.problem(line, "name", "must be at most 200 characters")
    parents = {v["parent"] for _, v in data.records if v.get("parent")} - kinds.keys()
    stored = inventory.organisation_kinds(parents)
    orgs: list[Organisation] = []
    for line, values in data.records:
        org_id, parent = values["id"], values.get("parent") or None
        kind = kinds.get(org_id)
        if parent is not None and _valid_id(data, line, "parent", parent):
            parent_kind = kinds.get(parent) or stored.get(parent)
            if parent == org_id:
                data.problem(line, "parent", "an organisation cannot be its own parent")
            elif parent_kind is None and parent not in first_line:
                data.problem(line, "parent", f"no organisation {parent} in this file or stored")
            elif kind and parent_kind and (reason := parent_problem(kind, parent_kind)):
                data.problem(line, "parent", reason)
        if kind is not None:
            orgs.append(Organisation(org_id, values["name"], kind, parent))
    data.reject_if_any()
    return inventory.upsert_organisations(orgs, progress)


def import_devices(
    rows: Iterable[str],
    inventory: Inventory,
    progress: Progress | None = None,
    *,
    source: str = "<input>",
) -> UpsertResult:
    """Check a devices CSV file whole (see docs/inventory-import.md), then upsert it in one go."""
    data = _read(rows, source, DEVICE_COLUMNS, DEVICE_REQUIRED)
    router_ids = {
        _router_id(values) for _, values in data.records if values["kind"].lower() == "router"
    }
    owners = inventory.organisation_kinds({values["organisation"] for _, values in data.records})
    taken = inventory.router_serials(router_ids)
    seen: dict[str, dict[str, int]] = {"serial": {}, "imei": {}, "router_id": {}}
    items: list[Device | Router] = []
    for line, values in data.records:
        for column in ("serial", "imei", "router_id"):
            value = _router_id(values) if column == "router_id" else values.get(column, "")
            if value and (column != "router_id" or values["kind"].lower() == "router"):
                if value in seen[column]:
                    data.problem(line, column, f"{value} is already on line {seen[column][value]}")
                seen[column].setdefault(value, line)
        item = _device(data, line, values, owners, taken)
        if item is not None:
            items.append(item)
    data.reject_if_any()
    return inventory.upsert_devices(items, progress)


def _device(
    data: _Rows,
    line: int,
    values: dict[str, str],
    owners: dict[str, OrganisationKind],
    taken: dict[str, str],
) -> Device | Router | None:
    """The device or router of one row, or None after recording its problems."""
    before = len(data.problems)
    get = values.get
    serial, org_id = values["serial"], values["organisation"]
    kind = _enum(data, line, "kind", DeviceKind, values["kind"])
    _valid_id(data, line, "serial", serial)
    owner = owners.get(org_id)
    if _valid_id(data, line, "organisation", org_id) and owner is None:
        data.problem(line, "organisation", f"no organisation {org_id} is stored: import it first")
    if len(values["order_number"]) > 64:
        data.problem(line, "order_number", "must be at most 64 characters")
    imei = get("imei") or None
    if imei is None and kind is DeviceKind.ROUTER:
        data.problem(line, "imei", "is required for a router")
    _check(data, line, "imei", imei, imei_problem)
    allocation = _enum(data, line, "allocation", Allocation, get("allocation"))
    if allocation is not None and owner not in (None, OrganisationKind.LOCAL_AUTHORITY):
        data.problem(
            line, "allocation", f"only for devices of a local authority; {org_id} is a {owner}"
        )
    _check(data, line, "order_term", get("order_term") or None, order_term_problem)
    status = _enum(data, line, "status", DeviceStatus, get("status")) or DeviceStatus.IN_USE
    if kind is not None and kind is not DeviceKind.ROUTER:
        for column in ROUTER_ONLY:
            if get(column):
                data.problem(line, column, "only for routers (kind router)")
    endpoint = None
    router_id = _router_id(values)
    if kind is DeviceKind.ROUTER:
        _check(data, line, "iccid", get("iccid") or None, iccid_problem)
        if _valid_id(data, line, "router_id", router_id) and taken.get(router_id, serial) != serial:
            data.problem(
                line,
                "router_id",
                f"{router_id} is already the router id of device {taken[router_id]}",
            )
        endpoint = _endpoint(data, line, values)
    if len(data.problems) > before or kind is None:
        return None
    device = Device(
        serial,
        kind,
        org_id,
        values["order_number"],
        imei,
        allocation,
        get("order_term") or None,
        status,
    )
    if kind is not DeviceKind.ROUTER:
        return device
    return Router(router_id, device, get("iccid") or None, endpoint)


def _endpoint(data: _Rows, line: int, values: dict[str, str]) -> Endpoint | None:
    """A router's management endpoint: host, protocol and profile together, port optional."""
    given = {column: values.get(column, "") for column in ENDPOINT}
    if not any(given.values()):
        return None
    for column in ("protocol", "host", "profile"):
        if not given[column]:
            data.problem(line, column, "is required when any of protocol, host, port, profile is")
    protocol = _enum(data, line, "protocol", Protocol, given["protocol"])
    host = given["host"]
    if host and not _is_host(host):
        data.problem(line, "host", "must be a hostname or an IP address")
    _check(data, line, "profile", given["profile"] or None, identifier_problem)
    port = DEFAULT_PORTS[protocol] if protocol is not None else 0
    if given["port"]:
        if given["port"].isdigit() and 1 <= int(given["port"]) <= 65535:
            port = int(given["port"])
        else:
            data.problem(line, "port", "must be a number from 1 to 65535")
    if protocol is None or not host or not given["profile"]:
        return None
    return Endpoint(protocol, host, port, given["profile"])


def _read(
    rows: Iterable[str], source: str, columns: tuple[str, ...], required: tuple[str, ...]
) -> _Rows:
    """The header checked and the data rows split into stripped values by column name."""
    data = _Rows(source)
    reader = csv.reader(rows, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            data.problem(
                1, None, f"the file is empty: line 1 must name the columns ({', '.join(columns)})"
            )
            data.reject_if_any()
        names = [cell.strip().lstrip("\ufeff").strip().lower() for cell in header or []]
        _check_header(data, names, columns, required)
        data.reject_if_any()
        previous = reader.line_num
        for cells in reader:
            line, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, and rows of empty cells a spreadsheet leaves behind
            extra = cells[len(names) :]
            if len(cells) < len(names) or any(cell.strip() for cell in extra):
                data.problem(
                    line,
                    None,
                    f"has {len(cells)} values, but the header names {len(names)} columns",
                )
                continue
            values = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if name}
            for name in required:
                if not values[name]:
                    data.problem(line, name, "is required")
            data.records.append((line, values))
    except csv.Error as exc:
        data.problem(reader.line_num, None, f"not readable as CSV: {exc}")
    except UnicodeDecodeError as exc:
        data.problem(reader.line_num + 1, None, f"not UTF-8 text ({exc.reason})")
    if not data.records and not data.problems:
        data.problem(2, None, "no rows after the header: nothing to import")
    return data


def _check_header(
    data: _Rows, names: list[str], columns: tuple[str, ...], required: tuple[str, ...]
) -> None:
    for position, name in enumerate(names):
        if name and name not in columns:
            data.problem(1, name, f"unknown column; the columns are {', '.join(columns)}")
        elif name and name in names[:position]:
            data.problem(1, name, "is named twice")
    for name in required:
        if name not in names:
            data.problem(1, None, f"the required column {name} is missing")


def _enum(data: _Rows, line: int, column: str, enum: type[_E], value: str | None) -> _E | None:
    if not value:
        return None
    try:
        return enum(value.lower())
    except ValueError:
        data.problem(line, column, f"{value!r} is not one of {', '.join(enum)}")
        return None


def _check(
    data: _Rows, line: int, column: str, value: str | None, rule: Callable[[str], str | None]
) -> None:
    reason = rule(value) if value is not None else None
    if reason is not None:
        data.problem(line, column, reason)


def _valid_id(data: _Rows, line: int, column: str, value: str) -> bool:
    """Whether `value` (already known to be present if required) is a usable id."""
    if not value:
        return False
    reason = identifier_problem(value)
    if reason:
        data.problem(line, column, reason)
    return reason is None


def _router_id(values: dict[str, str]) -> str:
    return values.get("router_id") or values["serial"]


def _is_host(value: str) -> bool:
    if _HOSTNAME_RE.fullmatch(value):  # names and IPv4 addresses; cheap, and nearly every row
        return True
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True
