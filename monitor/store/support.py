"""Support requests as stored: created with the alert transition, then followed through the portal.

`open_request` runs inside `AlertStore.apply`'s transaction (the outbox), so a request exists
exactly when the transition that calls for it committed, and its primary key (the episode's
correlation id) stops a second one. The dispatcher moves it on with the `mark_*` methods; the API
and the metrics read it with `find`, `get` and `counts`.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Engine, Row, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.model import (
    Alert,
    OrganisationKind,
    SupportRequest,
    SupportRequestKind,
    SupportRequestState,
)
from monitor.store.db import as_utc, connected, insert_for, reading, writing
from monitor.store.tables import OrganisationRow, SupportRequestRow

# "Schools and colleges will need to ask their trust or local authority" (guidance): one under
# an LA or trust is raised for by it; anyone else raises their own.
_ASK_THEIR_PARENT = frozenset({OrganisationKind.SCHOOL.value, OrganisationKind.COLLEGE.value})
_RAISES_FOR_SCHOOLS = frozenset({OrganisationKind.LOCAL_AUTHORITY, OrganisationKind.ACADEMY_TRUST})


class SupportRequests:
    """Reads and moves on support requests."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def get(self, correlation_id: str) -> SupportRequest | None:
        """One request by its correlation id, or None."""
        with reading(self._sessions, "support requests") as session:
            row = session.get(SupportRequestRow, correlation_id)
            return _request(row) if row is not None else None

    def find(
        self,
        *,
        organisations: Collection[str] | None = None,
        states: Collection[SupportRequestState] | None = None,
        router_id: str | None = None,
        kind: SupportRequestKind | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[SupportRequest]:
        """Requests newest first; `organisations` keeps those at, or raised by, any of them."""
        given = _filters(organisations, states, router_id, kind)
        query = _finding(frozenset(given))
        with connected(self._engine, "support requests") as connection:
            rows = connection.execute(query, {**given, "limit": limit, "offset": offset}).all()
        return [_request(row) for row in rows]

    def count(
        self,
        *,
        organisations: Collection[str] | None = None,
        states: Collection[SupportRequestState] | None = None,
        router_id: str | None = None,
        kind: SupportRequestKind | None = None,
    ) -> int:
        """How many requests `find` would list without a limit."""
        given = _filters(organisations, states, router_id, kind)
        with connected(self._engine, "support requests") as connection:
            return int(connection.execute(_counting(frozenset(given)), given).scalar() or 0)

    def counts(self) -> dict[tuple[str, str], int]:
        """How many requests there are, by (kind, state)."""
        query = select(SupportRequestRow.kind, SupportRequestRow.state, func.count()).group_by(
            SupportRequestRow.kind, SupportRequestRow.state
        )
        with reading(self._sessions, "support requests") as session:
            return {(kind, state): count for kind, state, count in session.execute(query)}

    def awaiting_response(self) -> list[SupportRequest]:
        """Open requests the portal has not yet responded to (the SLA clock is running)."""
        query = (
            select(SupportRequestRow)
            .where(SupportRequestRow.state == SupportRequestState.OPEN.value)
            .where(SupportRequestRow.responded_at.is_(None))
        )
        with reading(self._sessions, "support requests") as session:
            return [_request(row) for row in session.scalars(query)]

    def mark_open(self, correlation_id: str, sys_id: str, number: str, at: datetime) -> bool:
        """The portal holds an incident for it (created now, or found by correlation id).

        Only a queued request opens: False if it has meanwhile been closed (or failed).
        """
        return self._set(
            correlation_id,
            "recording an opened request",
            only_if=SupportRequestState.QUEUED,
            state=SupportRequestState.OPEN.value,
            portal_sys_id=sys_id,
            portal_number=number,
            opened_at=func.coalesce(SupportRequestRow.opened_at, at),
            last_error=None,
            updated_at=at,
        )

    def mark_responded(self, correlation_id: str, at: datetime) -> None:
        """The support team has started on it: the response aim is met."""
        self._set(
            correlation_id,
            "recording a response",
            responded_at=func.coalesce(SupportRequestRow.responded_at, at),
            updated_at=at,
        )

    def mark_resolved(self, correlation_id: str, at: datetime) -> None:
        """The problem cleared (and the incident was resolved, if so configured)."""
        self._set(
            correlation_id,
            "resolving a request",
            state=SupportRequestState.RESOLVED.value,
            resolved_at=at,
            last_error=None,
            updated_at=at,
        )

    def mark_recorded(self, correlation_id: str, at: datetime) -> None:
        """Routed to no portal by configuration: kept for the API only."""
        self._set(
            correlation_id,
            "recording a request",
            state=SupportRequestState.RECORDED.value,
            updated_at=at,
        )

    def mark_failed(self, correlation_id: str, error: str, at: datetime) -> None:
        """The portal refused it for good (400, 401, 403): an operator must look."""
        self._set(
            correlation_id,
            "recording a failed request",
            state=SupportRequestState.FAILED.value,
            last_error=error[:500],
            updated_at=at,
        )

    def note_error(self, correlation_id: str, error: str, at: datetime) -> None:
        """A passing failure (portal down, rate limited): it will be tried again."""
        self._set(correlation_id, "noting an error", last_error=error[:500], updated_at=at)

    def _set(
        self,
        correlation_id: str,
        what: str,
        only_if: SupportRequestState | None = None,
        **values: Any,
    ) -> bool:
        statement = update(SupportRequestRow).where(
            SupportRequestRow.correlation_id == correlation_id
        )
        if only_if is not None:
            statement = statement.where(SupportRequestRow.state == only_if.value)
        with writing(self._sessions, what) as session:
            changed = session.execute(statement.values(**values))
            return bool(changed.rowcount)  # type: ignore[attr-defined]


def _filters(
    organisations: Collection[str] | None,
    states: Collection[SupportRequestState] | None,
    router_id: str | None,
    kind: SupportRequestKind | None,
) -> dict[str, Any]:
    """The filters asked for, as the bound parameters `_matching` names (absent: any)."""
    given: dict[str, Any] = {}
    if organisations is not None:
        given["organisations"] = list(organisations)
    if states is not None:
        given["states"] = [state.value for state in states]
    if router_id is not None:
        given["router_id"] = router_id
    if kind is not None:
        given["kind"] = kind.value
    return given


def _matching(query: Select[Any], filters: frozenset[str]) -> Select[Any]:
    """`query` narrowed by the `filters` named, each a bound parameter: the requests at, or
    raised by, the `organisations`, in the `states`, about `router_id`, of `kind`."""
    if "organisations" in filters:
        ids: BindParameter[Any] = bindparam("organisations", expanding=True)
        query = query.where(
            or_(SupportRequestRow.organisation_id.in_(ids), SupportRequestRow.on_behalf_of.in_(ids))
        )
    if "states" in filters:
        query = query.where(SupportRequestRow.state.in_(bindparam("states", expanding=True)))
    if "router_id" in filters:
        query = query.where(SupportRequestRow.router_id == bindparam("router_id"))
    if "kind" in filters:
        query = query.where(SupportRequestRow.kind == bindparam("kind"))
    return query


# Built once per combination of filters (16 at most): the status API lists a router's open
# requests on every request for it (see `monitor.store.db.connected`).
@functools.cache
def _finding(filters: frozenset[str]) -> Select[Any]:
    query = _matching(select(*SupportRequestRow.__table__.c), filters)
    query = query.order_by(SupportRequestRow.raised_at.desc(), SupportRequestRow.correlation_id)
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


@functools.cache
def _counting(filters: frozenset[str]) -> Select[Any]:
    return _matching(select(func.count()).select_from(SupportRequestRow), filters)


def open_request(session: Session, alert: Alert, now: datetime) -> int:
    """Write the request a firing alert calls for, in the caller's transaction; 1 if new."""
    if alert.request is None or alert.episode_id is None:
        return 0
    at = alert.organisation_id
    parent = session.execute(
        select(OrganisationRow.kind, OrganisationRow.parent_id).where(OrganisationRow.id == at)
    ).first()
    on_behalf_of = at
    if parent is not None and parent.kind in _ASK_THEIR_PARENT and parent.parent_id:
        kind = session.scalar(
            select(OrganisationRow.kind).where(OrganisationRow.id == parent.parent_id)
        )
        if kind in _RAISES_FOR_SCHOOLS:
            on_behalf_of = parent.parent_id
    notes = alert.annotations
    values = {
        "correlation_id": alert.episode_id,
        "kind": alert.request.value,
        "state": SupportRequestState.QUEUED.value,
        "fingerprint": alert.fingerprint,
        "rule": alert.rule.value,
        "organisation_id": at,
        "on_behalf_of": on_behalf_of,
        "router_id": alert.router_id,
        "imei": notes.get("imei"),
        "iccid": notes.get("iccid"),
        "order_number": notes.get("order_number"),
        "summary": summary(alert)[:160],
        "raised_at": alert.starts_at or now,
        "updated_at": now,
    }
    statement = insert_for(session, SupportRequestRow).values(values)
    statement = statement.on_conflict_do_nothing(index_elements=["correlation_id"])
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def summary(alert: Alert) -> str:
    """The one-line description a request (and the portal's short_description) carries."""
    what = (alert.request or SupportRequestKind.CONNECTIVITY_SUPPORT).value.replace("_", " ")
    subject = f"router {alert.router_id}" if alert.router_id else "organisation"
    place = alert.organisation_id or "?"
    imei = alert.annotations.get("imei")
    order = alert.annotations.get("order_number")
    quoted = ", ".join(
        part for part in (f"IMEI {imei}" if imei else "", f"order {order}" if order else "") if part
    )
    return f"{what.capitalize()}: {alert.rule.value} on {subject} at {place}" + (
        f" ({quoted})" if quoted else ""
    )


def _request(row: SupportRequestRow | Row[Any]) -> SupportRequest:
    def stamp(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return SupportRequest(
        correlation_id=row.correlation_id,
        kind=SupportRequestKind(row.kind),
        state=SupportRequestState(row.state),
        fingerprint=row.fingerprint,
        rule=row.rule,
        organisation_id=row.organisation_id,
        on_behalf_of=row.on_behalf_of,
        router_id=row.router_id,
        imei=row.imei,
        iccid=row.iccid,
        order_number=row.order_number,
        summary=row.summary,
        raised_at=as_utc(row.raised_at),
        updated_at=as_utc(row.updated_at),
        portal_number=row.portal_number,
        portal_sys_id=row.portal_sys_id,
        opened_at=stamp(row.opened_at),
        responded_at=stamp(row.responded_at),
        resolved_at=stamp(row.resolved_at),
        last_error=row.last_error,
    )
