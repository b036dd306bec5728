"""Health persistence: each router's current health state and the history of its transitions.

A state and the transition that produced it are written in one transaction, so after a restart
the daemon resumes each router's damping where it stopped and never announces a change twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, Row, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.model import Health, HealthState, Transition
from monitor.store.db import as_utc, insert_for, reading, writing
from monitor.store.tables import HealthStateRow, HealthTransitionRow


class HealthStore:
    """Reads and writes health states and transitions."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def load_states(self, router_ids: Iterable[str] | None = None) -> dict[str, HealthState]:
        """The persisted health of the given routers (all if None), by router id."""
        query = select(HealthStateRow)
        if router_ids is not None:
            query = query.where(HealthStateRow.router_id.in_(list(router_ids)))
        with reading(self._sessions, "health") as session:
            return {row.router_id: health_of(row) for row in session.scalars(query)}

    def record(self, state: HealthState, transition: Transition | None) -> None:
        """Store the router's health and, if it changed, the transition, atomically."""
        with writing(self._sessions, f"recording health of {state.router_id}") as session:
            write_health(session, state, [transition] if transition is not None else [])

    def transitions(self, router_id: str, limit: int = 100) -> list[Transition]:
        """The router's latest transitions, newest first."""
        query = (
            select(HealthTransitionRow)
            .where(HealthTransitionRow.router_id == router_id)
            .order_by(HealthTransitionRow.at.desc(), HealthTransitionRow.id.desc())
            .limit(limit)
        )
        with reading(self._sessions, "health") as session:
            return [_transition(row) for row in session.scalars(query)]


def write_health(
    session: Session, state: HealthState | None, transitions: Sequence[Transition]
) -> None:
    """Store a health state and append transitions (within the caller's transaction)."""
    write_healths(session, [state] if state is not None else [], transitions)


def write_healths(
    session: Session, states: Sequence[HealthState], transitions: Sequence[Transition]
) -> None:
    """Store many health states and append transitions: one statement each, executed for each.
    A transition already stored (same router, time and new state: a retried batch) is skipped."""
    if states:
        rows = [_values(state) for state in states]
        statement = insert_for(session, HealthStateRow)
        changes = {
            column: statement.excluded[column] for column in rows[0] if column != "router_id"
        }
        session.execute(
            statement.on_conflict_do_update(index_elements=["router_id"], set_=changes), rows
        )
    if transitions:
        session.execute(
            insert_for(session, HealthTransitionRow).on_conflict_do_nothing(
                index_elements=["router_id", "at", "to_state"]
            ),
            [
                {
                    "router_id": transition.router_id,
                    "at": transition.at,
                    "from_state": transition.from_state.value,
                    "to_state": transition.to_state.value,
                    "reason": transition.reason[:500],
                }
                for transition in transitions
            ],
        )


def _values(state: HealthState) -> dict[str, Any]:
    return {
        "router_id": state.router_id,
        "state": state.state.value,
        "since": state.since,
        "pending": state.pending.value if state.pending else None,
        "pending_since": state.pending_since,
        "last_at": state.last_at,
    }


def health_of(row: HealthStateRow | Row[Any]) -> HealthState:
    """The health state a stored row holds."""
    return HealthState(
        router_id=row.router_id,
        state=Health(row.state),
        since=as_utc(row.since),
        pending=Health(row.pending) if row.pending else None,
        pending_since=as_utc(row.pending_since) if row.pending_since else None,
        last_at=as_utc(row.last_at) if row.last_at else None,
    )


def _transition(row: HealthTransitionRow) -> Transition:
    return Transition(
        row.router_id, as_utc(row.at), Health(row.from_state), Health(row.to_state), row.reason
    )
