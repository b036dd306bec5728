"""The support portal's side of a support request: the ServiceNow Table API calls we make.

Blocking `requests` calls (low volume: a request per problem, not per poll), meant to run in a
worker thread; every failure is a `NotifyError`, transient (connection refused, timeout, 5xx,
408, 429 with its `Retry-After`) or permanent (400, 401, 403, 404...: retrying cannot help).

Idempotency rests on the correlation id (the alert episode's id): `find` looks it up before
`create`, so a create whose reply was lost, a retry, or a restart after a crash finds the
incident made the first time instead of making a second. The lookup is not limited to active
incidents: one the support team already resolved still stands for its episode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from monitor import __version__
from monitor.alerts.transport import NotifyError, cause, redact, retry_after, untrusted
from monitor.model import Alert, SupportRequest, SupportRequestKind

TABLE = "/api/now/table/incident"
NEW = "1"  # incident state New: nobody has picked it up yet
RESOLVED = 6
GONE = 404  # the record does not exist (deleted), or an ACL hides it from us
_USER_AGENT = f"router-monitor/{__version__}"
_FIELDS = "sys_id,number,state,active,comments"

# How the support team should weigh each kind (ServiceNow's 1 high .. 3 low).
PRIORITY: Mapping[SupportRequestKind, int] = {
    SupportRequestKind.CONNECTIVITY_SUPPORT: 2,
    SupportRequestKind.REACTIVATE_SIM: 2,
    SupportRequestKind.DEACTIVATE_SIM: 1,  # a lost or stolen SIM is still spending data
    SupportRequestKind.DATA_CAP_REACHED: 3,
    SupportRequestKind.REPLACE_ROUTER: 2,
    SupportRequestKind.RECONFIGURE_ROUTER: 3,
}
_OBSERVED_SKIP = frozenset({"imei", "iccid", "order_number", "checks", "advice"})


@dataclass(frozen=True, slots=True)
class Incident:
    """What we need of a portal incident."""

    sys_id: str
    number: str
    state: str
    active: bool
    responded: bool  # picked up: moved on from New, or a comment to the caller


@dataclass(frozen=True, repr=False)
class ServiceNowPortal:
    """The Table API of one ServiceNow instance (basic auth, or a bearer token)."""

    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout: float = 10.0
    caller_id: str | None = None
    assignment_groups: Mapping[str, str] = field(default_factory=dict)  # kind -> group
    session: requests.Session = field(default_factory=requests.Session, compare=False)

    def __repr__(self) -> str:
        return f"ServiceNowPortal({redact(self.url)!r})"

    def find(self, correlation_id: str) -> Incident | None:
        """The incident raised for this correlation id, if any (active or not)."""
        params = {
            "sysparm_query": f"correlation_id={correlation_id}",
            "sysparm_limit": "1",
            "sysparm_fields": _FIELDS,
        }
        result = self._call("GET", TABLE, params=params)
        rows = result if isinstance(result, list) else []
        return _incident(rows[0]) if rows else None

    def get(self, sys_id: str) -> Incident:
        """One incident by its sys_id."""
        return _incident(self._call("GET", f"{TABLE}/{sys_id}", params={"sysparm_fields": _FIELDS}))

    def create(self, request: SupportRequest, alert: Alert | None, on_behalf_of: str) -> Incident:
        """Raise the incident for `request`."""
        body = incident_body(request, alert, on_behalf_of, self.caller_id)
        group = self.assignment_groups.get(request.kind.value)
        if group:
            body["assignment_group"] = group
        return _incident(self._call("POST", TABLE, body=body))

    def note(self, sys_id: str, text: str) -> None:
        """Append a work note (the support team's journal)."""
        self._call("PATCH", f"{TABLE}/{sys_id}", body={"work_notes": text})

    def resolve(self, sys_id: str, close_code: str, notes: str) -> None:
        """Resolve the incident (state 6 needs a close code and close notes)."""
        body = {"state": str(RESOLVED), "close_code": close_code, "close_notes": notes}
        self._call("PATCH", f"{TABLE}/{sys_id}", body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        url = self.url.rstrip("/") + path
        what = f"{method} {redact(url)}"
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        auth: tuple[str, str] | None = None
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.username is not None and self.password is not None:
            auth = (self.username, self.password)
        try:
            reply = self.session.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,  # a redirect to a login page is not an answer
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NotifyError(untrusted(exc), f"{what}: {cause(exc)}") from exc
        except requests.RequestException as exc:
            raise NotifyError(True, f"{what}: {cause(exc)}") from exc
        if reply.status_code >= 300:
            transient = reply.status_code >= 500 or reply.status_code in (408, 429)
            wait = retry_after(reply.headers.get("Retry-After", "")) if transient else None
            message = f"{what}: HTTP {reply.status_code} {_error_text(reply)}".rstrip()
            raise NotifyError(not transient, message, wait, reply.status_code)
        try:
            return reply.json()["result"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NotifyError(False, f"{what}: the reply is not a Table API result") from exc


def _error_text(reply: requests.Response) -> str:
    """ServiceNow's `{"error": {"message", "detail"}}`, else the start of the body."""
    try:
        error = reply.json().get("error") or {}
        text = " - ".join(str(error[key]) for key in ("message", "detail") if error.get(key))
    except (ValueError, AttributeError):
        text = reply.text
    return " ".join(text[:200].split())


def _incident(record: object) -> Incident:
    if not isinstance(record, dict) or not record.get("sys_id"):
        raise NotifyError(False, "the portal's reply has no incident sys_id")
    state = str(record.get("state", ""))
    comments = str(record.get("comments", "")).strip()
    return Incident(
        sys_id=str(record["sys_id"]),
        number=str(record.get("number", "")),
        state=state,
        active=str(record.get("active", "true")) != "false",
        responded=(state not in ("", NEW)) or bool(comments),
    )


def incident_body(
    request: SupportRequest, alert: Alert | None, on_behalf_of: str, caller_id: str | None
) -> dict[str, Any]:
    """The incident's fields: who and what, quoting the order number and IMEI (guidance)."""
    priority = PRIORITY.get(request.kind, 2)
    body: dict[str, Any] = {
        "short_description": request.summary,
        "description": describe(request, alert, on_behalf_of),
        "impact": str(priority),
        "urgency": str(priority),
        "correlation_id": request.correlation_id,
        "correlation_display": "router-monitor",
    }
    if caller_id:
        body["caller_id"] = caller_id
    return body


def describe(request: SupportRequest, alert: Alert | None, on_behalf_of: str) -> str:
    """The request's description: the identifiers first, then what was observed."""
    lines = [
        f"Request: {request.kind.value.replace('_', ' ')}",
        f"Raised on behalf of: {on_behalf_of}",
        f"Organisation: {request.organisation_id or '-'}",
        f"Router: {request.router_id or '-'}",
        f"Order number: {request.order_number or '-'}",
        f"IMEI: {request.imei or '-'}",
        f"SIM ICCID: {request.iccid or '-'}",
        f"Raised at: {request.raised_at.isoformat()}",
    ]
    if alert is not None:
        lines.append(f"Observed: {alert.rule.value}")
        notes = alert.annotations
        lines += [
            f"  {key}: {value}" for key, value in sorted(notes.items()) if key not in _OBSERVED_SKIP
        ]
        for key in ("checks", "advice"):
            if key in notes:
                lines += ["", notes[key]]
    return "\n".join(lines)


def work_note(alert: Alert) -> str:
    """A work note saying how the situation stands now."""
    notes = json.dumps(
        {k: v for k, v in sorted(alert.annotations.items()) if k not in _OBSERVED_SKIP},
        ensure_ascii=False,
    )
    return f"router-monitor: {alert.rule.value} is {alert.state.value}; now: {notes}"
