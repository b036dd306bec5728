"""The emulated support portal's incident table: records, journals, queries, ServiceNow errors.

Pure bookkeeping with `now` passed in; `monitor.emulator.portal` serves it over HTTP. Records go
out as the Table API sends them by default: every value a string (`"state": "6"`, `"active":
"false"`), dates as `YYYY-MM-DD HH:MM:SS` in UTC, and a journal (`work_notes`, `comments`) as
its display text, newest entry first. A request that fails validation changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_CORRELATION_ID = 100
STATES = {1: "New", 2: "In Progress", 3: "On Hold", 6: "Resolved", 7: "Closed", 8: "Canceled"}
RESOLVED = 6
INACTIVE_STATES = frozenset({6, 7, 8})
TEXT_FIELDS = (
    "short_description", "description", "caller_id", "assignment_group", "close_code",
    "close_notes", "correlation_id", "correlation_display",
)  # fmt: skip
CHOICE_FIELDS = {"impact": (1, 2, 3), "urgency": (1, 2, 3), "state": tuple(STATES)}
JOURNAL_LABELS = {"work_notes": "Work notes", "comments": "Additional comments"}
# Conditions this emulator evaluates; anything else is refused loudly rather than matching every
# row, which is what a real instance does with an unknown field (and how duplicates get made).
QUERYABLE = frozenset({*TEXT_FIELDS, *CHOICE_FIELDS, "active", "number", "sys_id"})


class PortalError(Exception):
    """A request the portal refuses: the HTTP status and ServiceNow's error body."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, object]:
        """The JSON body ServiceNow answers with."""
        return {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One write to a journal field: when, by whom, what."""

    at: float
    author: str
    text: str


@dataclass
class Incident:
    """One stored incident, with typed values (the wire form is `render`)."""

    sys_id: str
    number: str
    opened_at: float
    sys_created_on: float
    sys_updated_on: float
    short_description: str = ""
    description: str = ""
    caller_id: str = ""
    assignment_group: str = ""
    close_code: str = ""
    close_notes: str = ""
    correlation_id: str = ""
    correlation_display: str = ""
    impact: int = 3
    urgency: int = 3
    state: int = 1
    resolved_at: float | None = None
    work_notes: list[JournalEntry] = field(default_factory=list)
    comments: list[JournalEntry] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Resolved, closed and canceled incidents are inactive, as the state's business rule."""
        return self.state not in INACTIVE_STATES


class IncidentTable:
    """The incident table: create, read, update and query, numbered INC0010001 upwards."""

    def __init__(self) -> None:
        self._rows: dict[str, Incident] = {}
        self._next_number = 10001

    def all(self) -> list[Incident]:
        """Every incident, oldest first."""
        return list(self._rows.values())

    def get(self, sys_id: str) -> Incident:
        """The incident with this sys_id, else a 404."""
        incident = self._rows.get(sys_id)
        if incident is None:
            raise PortalError(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return incident

    def delete(self, sys_id: str) -> None:
        """Remove an incident, as an administrator can (the API then answers 404 for it)."""
        self.get(sys_id)
        del self._rows[sys_id]

    def create(self, body: object, now: float, author: str) -> Incident:
        """A new incident from a request body (state 1 New unless given)."""
        changes = parse_changes(body)
        number = f"INC{self._next_number:07d}"
        incident = Incident(uuid.uuid4().hex, number, now, now, now)
        _apply(incident, changes, now, author)
        self._next_number += 1
        self._rows[incident.sys_id] = incident
        return incident

    def update(self, sys_id: str, body: object, now: float, author: str) -> Incident:
        """Apply a PATCH body: fields replace, journals append."""
        incident = self.get(sys_id)
        _apply(incident, parse_changes(body), now, author)
        return incident

    def query(self, sysparm_query: str) -> list[Incident]:
        """Every incident matching all the `field=value` conditions, oldest first."""
        conditions = parse_query(sysparm_query)
        return [row for row in self._rows.values() if _matches(render(row), conditions)]


def parse_changes(body: object) -> dict[str, str | int]:
    """The writable fields of a body, checked; unknown fields are ignored, as ServiceNow does."""
    if not isinstance(body, dict):
        raise PortalError(400, "Exception while reading request", "The payload is not an object.")
    changes: dict[str, str | int] = {}
    for name, value in body.items():
        if name in CHOICE_FIELDS:
            changes[name] = _choice(name, value)
        elif name in TEXT_FIELDS or name in JOURNAL_LABELS:
            changes[name] = _text(name, value)
    correlation_id = changes.get("correlation_id", "")
    if isinstance(correlation_id, str) and len(correlation_id) > MAX_CORRELATION_ID:
        raise PortalError(
            400, "Invalid field value", f"correlation_id is longer than {MAX_CORRELATION_ID}"
        )
    return changes


def parse_query(text: str) -> list[tuple[str, str]]:
    """`field=value` conditions joined by `^`; ORDERBY terms and the `EQ` terminator are ignored."""
    conditions: list[tuple[str, str]] = []
    for term in text.split("^"):
        if not term or term == "EQ" or term.startswith("ORDERBY"):
            continue  # ordering is always oldest first here
        name, equals, value = term.partition("=")
        if not equals or name not in QUERYABLE:
            raise PortalError(
                400, "Invalid query", f"unsupported condition {term!r} (only field=value)"
            )
        conditions.append((name, value))
    return conditions


def render(incident: Incident, fields: Sequence[str] = ()) -> dict[str, str]:
    """The record as the Table API sends it (only `fields` when given, as sysparm_fields)."""
    out = {"sys_id": incident.sys_id, "number": incident.number}
    out.update({name: getattr(incident, name) for name in TEXT_FIELDS})
    out.update({name: str(getattr(incident, name)) for name in CHOICE_FIELDS})
    out["active"] = "true" if incident.active else "false"
    out["opened_at"] = stamp(incident.opened_at)
    out["resolved_at"] = "" if incident.resolved_at is None else stamp(incident.resolved_at)
    out["sys_created_on"] = stamp(incident.sys_created_on)
    out["sys_updated_on"] = stamp(incident.sys_updated_on)
    for name, label in JOURNAL_LABELS.items():
        out[name] = _journal_text(getattr(incident, name), label)
    return {name: out[name] for name in fields if name in out} if fields else out


def stamp(at: float) -> str:
    """A ServiceNow date-time: UTC, `YYYY-MM-DD HH:MM:SS`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _apply(incident: Incident, changes: dict[str, str | int], now: float, author: str) -> None:
    state = int(changes.get("state", incident.state))
    close_code = str(changes.get("close_code", incident.close_code))
    close_notes = str(changes.get("close_notes", incident.close_notes))
    if state == RESOLVED and not (close_code.strip() and close_notes.strip()):
        # Checked before anything is written, so a refused resolve leaves the record as it was.
        raise PortalError(
            400,
            "Data Policy Exception",
            "The following fields are mandatory: Resolution code, Resolution notes",
        )
    if state == RESOLVED and incident.state != RESOLVED:
        incident.resolved_at = now
    elif state not in INACTIVE_STATES:
        incident.resolved_at = None  # reopened
    for name, value in changes.items():
        if name in JOURNAL_LABELS:
            if str(value).strip():  # an empty journal write adds nothing, as on an instance
                getattr(incident, name).append(JournalEntry(now, author, str(value)))
        else:
            setattr(incident, name, value)
    incident.sys_updated_on = now


def _choice(name: str, value: object) -> int:
    # Clients send choice values as numbers or as strings ("6"); both are accepted.
    try:
        number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        number = 0
    if number not in CHOICE_FIELDS[name]:
        raise PortalError(
            400, "Invalid field value", f"{name} must be one of {CHOICE_FIELDS[name]}"
        )
    return number


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise PortalError(400, "Invalid field value", f"{name} must be a string")
    return str(value)


def _matches(record: dict[str, str], conditions: Iterable[tuple[str, str]]) -> bool:
    return all(record.get(name) == value for name, value in conditions)


def _journal_text(entries: list[JournalEntry], label: str) -> str:
    return "".join(
        f"{stamp(entry.at)} - {entry.author} ({label})\n{entry.text}\n\n"
        for entry in reversed(entries)
    )
