"""Alert persistence and the outbox: a transition and what must be sent about it, together.

`AlertStore.apply` writes the alerts an evaluation changed and, in the same transaction, one
outbox row per thing to send (a notification of an episode firing or resolving; a support
request to raise, update or resolve). Outbox rows are unique per (episode, channel, event), so an
evaluation repeated after a crash or restart adds nothing; senders work from the outbox, never
from memory, so nothing is lost when a channel is down.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, Row, bindparam, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from monitor.model import Advance, Alert, AlertState, Rule, Severity, SupportRequestKind
from monitor.store.db import as_utc, connected, insert_for, reading, upsert, writing
from monitor.store.support import open_request
from monitor.store.tables import AlertRow, OutboxRow


class AlertStore:
    """Reads and writes alerts and their outbox rows."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def load(self) -> dict[str, Alert]:
        """Every alert not inactive, by fingerprint."""
        with reading(self._sessions, "alerts") as session:
            return {row.fingerprint: _alert(row) for row in session.scalars(select(AlertRow))}

    def of_router(self, router_id: str) -> list[Alert]:
        """The alerts about one router (not inactive): an indexed read of a few rows."""
        with connected(self._engine, "alerts") as connection:
            rows = connection.execute(_OF_ROUTER, {"router_id": router_id}).all()
        return [_alert(row) for row in rows]

    def apply(self, advances: Sequence[Advance], now: datetime) -> int:
        """Store what an evaluation changed and queue what to send; return rows queued."""
        queued = 0
        with writing(self._sessions, "recording alerts") as session:
            for step in advances:
                alert = step.alert
                if alert.state is AlertState.INACTIVE:
                    session.execute(
                        delete(AlertRow).where(AlertRow.fingerprint == alert.fingerprint)
                    )
                    continue
                if step.changed or step.updated:
                    upsert(session, AlertRow, _values(alert), "fingerprint")
                for channel, event in _sends(step):
                    queued += _enqueue(session, alert, channel, event, now)
        return queued

    def firing(self) -> dict[str, int]:
        """How many alerts fire, by rule."""
        query = (
            select(AlertRow.rule, func.count())
            .where(AlertRow.state == AlertState.FIRING.value)
            .group_by(AlertRow.rule)
        )
        with reading(self._sessions, "alerts") as session:
            return {rule: count for rule, count in session.execute(query)}

    def outbox(self, state: str | None = None) -> list[tuple[str, str, str, str]]:
        """Outbox rows as (episode, channel, event, state), oldest first (for the API and tests)."""
        query = select(OutboxRow.episode_id, OutboxRow.channel, OutboxRow.event, OutboxRow.state)
        if state is not None:
            query = query.where(OutboxRow.state == state)
        with reading(self._sessions, "outbox") as session:
            rows = session.execute(query.order_by(OutboxRow.id))
            return [(episode, channel, event, state) for episode, channel, event, state in rows]

    def claim(
        self, channel: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[Queued]:
        """Take due rows of `channel` for sending; each claimed by exactly one caller.

        A row is due when pending and its time has come, or when a sender claimed it and its
        lease ran out (the sender died): the conditional UPDATE makes two dispatchers, in one
        process or several, never both take one row. An episode's rows go one at a time, in
        order: a row waits while an earlier one of its episode and channel is unsettled, so a
        resolution is never sent before (or beside) the firing it resolves.
        """
        earlier = aliased(OutboxRow)
        unsettled_before = (
            exists()
            .where(earlier.episode_id == OutboxRow.episode_id)
            .where(earlier.channel == OutboxRow.channel)
            .where(earlier.id < OutboxRow.id)
            .where(earlier.state.in_(("pending", "sending")))
        )
        due = (
            select(OutboxRow)
            .where(OutboxRow.channel == channel)
            .where(OutboxRow.state.in_(("pending", "sending")))
            .where(OutboxRow.next_attempt_at <= now)
            .where(~unsettled_before)
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        claimed: list[Queued] = []
        with writing(self._sessions, "claiming outbox rows") as session:
            for row in session.scalars(due).all():
                taken = session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == row.id)
                    .where(OutboxRow.state == row.state)
                    .where(OutboxRow.next_attempt_at == row.next_attempt_at)
                    .values(state="sending", attempts=row.attempts + 1, next_attempt_at=now + lease)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    alert = session.get(AlertRow, row.fingerprint)
                    claimed.append(
                        Queued(
                            row.id,
                            row.event,
                            row.attempts + 1,
                            _alert(alert) if alert else None,
                            row.episode_id,
                        )
                    )
        return claimed

    def finish(self, row_id: int, state: str, at: datetime, error: str | None = None) -> None:
        """Mark a claimed row sent, failed (for good), or pending again from `at`."""
        with writing(self._sessions, "updating the outbox") as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(state=state, next_attempt_at=at, last_error=error and error[:500])
            )

    def pending(self) -> int:
        """Rows not yet sent and not failed for good."""
        query = select(func.count()).where(OutboxRow.state.in_(("pending", "sending")))
        with reading(self._sessions, "outbox") as session:
            return int(session.scalar(query) or 0)


@dataclass(frozen=True, slots=True)
class Queued:
    """A claimed outbox row: which event, which attempt, and the alert as it is now."""

    id: int
    event: str
    attempt: int
    alert: Alert | None  # None if the alert has since gone inactive and been removed
    episode_id: str = ""  # the episode the row is about (the alert may be in a later one)


def _sends(step: Advance) -> list[tuple[str, str]]:
    """What an alert's step calls for: (channel, event) pairs."""
    alert = step.alert
    sends: list[tuple[str, str]] = []
    if step.fired:
        sends.append(("notify", "firing"))
        if alert.raises_request:
            sends.append(("support", "firing"))
    elif step.changed and alert.state is AlertState.RESOLVED and step.previous is AlertState.FIRING:
        sends.append(("notify", "resolved"))
        if alert.request is not None:  # held back or not: a request it raised must close
            sends.append(("support", "resolved"))
    elif step.updated and alert.raises_request:
        sends.append(("support", "update"))
    return sends


def _enqueue(session: Session, alert: Alert, channel: str, event: str, now: datetime) -> int:
    if alert.episode_id is None:  # only firing or resolved alerts send, and they have one
        return 0
    insert = insert_for(session, OutboxRow)
    values = {
        "episode_id": alert.episode_id,
        "fingerprint": alert.fingerprint,
        "channel": channel,
        "event": event,
        "state": "pending",
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }
    key = ["episode_id", "channel", "event"]
    statement = insert.values(values)
    if event == "update":
        # Every change deserves its note: a sent update is queued again. One still pending will
        # carry the latest (it reads the alert when sent), so it is left as it is.
        statement = statement.on_conflict_do_update(
            index_elements=key,
            set_={"state": "pending", "next_attempt_at": now, "attempts": 0, "last_error": None},
            where=OutboxRow.state == "sent",
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=key)
    added = int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    if channel == "support" and event == "firing":
        open_request(session, alert, now)
    return added


def _values(alert: Alert) -> dict[str, object]:
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule.value,
        "state": alert.state.value,
        "severity": alert.severity.value,
        "updated_at": alert.updated_at,
        "router_id": alert.router_id,
        "organisation_id": alert.organisation_id,
        "active_since": alert.active_since,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "episode_id": alert.episode_id,
        "labels": json.dumps(alert.labels, sort_keys=True),
        "annotations": json.dumps(alert.annotations, sort_keys=True),
        "request": alert.request.value if alert.request else None,
        "held_back": alert.held_back,
    }


# Built once: read for every router the status API shows (see `monitor.store.db.connected`).
_OF_ROUTER: Final = select(*AlertRow.__table__.c).where(
    AlertRow.router_id == bindparam("router_id")
)


def _alert(row: AlertRow | Row[Any]) -> Alert:
    def stamp(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return Alert(
        fingerprint=row.fingerprint,
        rule=Rule(row.rule),
        state=AlertState(row.state),
        severity=Severity(row.severity),
        updated_at=as_utc(row.updated_at),
        router_id=row.router_id,
        organisation_id=row.organisation_id,
        active_since=stamp(row.active_since),
        starts_at=stamp(row.starts_at),
        ends_at=stamp(row.ends_at),
        episode_id=row.episode_id,
        labels=json.loads(row.labels),
        annotations=json.loads(row.annotations),
        request=SupportRequestKind(row.request) if row.request else None,
        held_back=row.held_back,
    )
