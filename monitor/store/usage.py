"""Usage persistence: each router's last readings and the month totals, written together.

`UsageStore.record` stores a router's new `UsageState` and adds its `UsageDelta`s to the month
totals in one transaction, so that a crash (even `kill -9`) at any point leaves either both or
neither: the next poll after a restart then counts from the readings that match the totals, and
no byte is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.model import Counter, CounterType, MonthUsage, UptimeClock, UsageDelta, UsageState
from monitor.store.db import as_utc, insert_for, reading, upsert, writing
from monitor.store.tables import UsageMonthRow, UsageStateRow

# usage_months keys a month by SIM; a router that reports no ICCID is booked under ''.
NO_SIM = ""

# What the cap counts, named: (iccid, "", month) for a SIM across every router it was in, or
# ("", router id, month) for a router that reports no ICCID.
CapKey = tuple[str, str, str]

# Keys per IN list: well under SQLite's and PostgreSQL's limits on bound parameters.
_CHUNK = 500


def cap_key(router_id: str, iccid: str | None, month: str) -> CapKey:
    """The key of what the cap counts for a router's SIM (or the router, with no SIM)."""
    return (iccid, NO_SIM, month) if iccid else (NO_SIM, router_id, month)


class UsageStore:
    """Reads and writes usage state and month totals."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def load_states(self, router_ids: Iterable[str] | None = None) -> dict[str, UsageState]:
        """The persisted state of the given routers (all if None), by router id."""
        query = select(UsageStateRow)
        if router_ids is not None:
            query = query.where(UsageStateRow.router_id.in_(list(router_ids)))
        with reading(self._sessions, "usage") as session:
            return {row.router_id: _state(row) for row in session.scalars(query)}

    def record(
        self, state: UsageState, deltas: Sequence[UsageDelta], now: datetime, month: str
    ) -> MonthUsage | None:
        """Store the router's new state and add the deltas to its month totals, atomically;
        return what the cap counts for `month` as of this write (its SIM's total across routers,
        or the router's own when it reports no ICCID), or None if nothing is on record."""
        with writing(self._sessions, f"recording usage of {state.router_id}") as session:
            write_state(session, state)
            for delta in deltas:
                add_to_month(session, delta, now)
            if state.iccid:
                return _sim_month(session, state.iccid, month)
            row = session.get(UsageMonthRow, (state.router_id, NO_SIM, month))
            return _month(row) if row is not None else None

    def months(self, router_id: str) -> list[MonthUsage]:
        """Every month on record for the router, one row per SIM, oldest first."""
        query = (
            select(UsageMonthRow)
            .where(UsageMonthRow.router_id == router_id)
            .order_by(UsageMonthRow.month, UsageMonthRow.iccid)
        )
        with reading(self._sessions, "usage") as session:
            return [_month(row) for row in session.scalars(query)]

    def sim_month(self, iccid: str, month: str) -> MonthUsage | None:
        """A SIM's total for a month across every router it was in (None if never seen)."""
        with reading(self._sessions, "usage") as session:
            return _sim_month(session, iccid, month)

    def cap_totals(self, keys: Iterable[CapKey]) -> dict[CapKey, MonthUsage | None]:
        """What the cap counts for each key (None where nothing is on record)."""
        with reading(self._sessions, "usage") as session:
            return cap_totals(session, keys)


def write_state(session: Session, state: UsageState) -> None:
    """Insert or replace the router's last readings (within the caller's transaction)."""
    upsert(session, UsageStateRow, _state_values(state), "router_id")


def write_states(session: Session, states: Sequence[UsageState]) -> None:
    """Insert or replace many routers' readings: one statement, executed for each."""
    if not states:
        return
    rows = [_state_values(state) for state in states]
    statement = insert_for(session, UsageStateRow)
    changes = {column: statement.excluded[column] for column in rows[0] if column != "router_id"}
    session.execute(
        statement.on_conflict_do_update(index_elements=["router_id"], set_=changes), rows
    )


def add_to_months(session: Session, deltas: Sequence[tuple[UsageDelta, datetime]]) -> None:
    """Add many deltas (each with the time it was observed) to their month totals."""
    if not deltas:
        return
    rows = [
        {
            "router_id": delta.router_id,
            "iccid": delta.iccid or NO_SIM,
            "month": delta.month,
            "received": delta.received,
            "sent": delta.sent,
            "partial": delta.partial,
            "updated_at": at,
        }
        for delta, at in deltas
    ]
    statement = insert_for(session, UsageMonthRow)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["router_id", "iccid", "month"],
            set_={
                "received": UsageMonthRow.received + statement.excluded.received,
                "sent": UsageMonthRow.sent + statement.excluded.sent,
                "partial": UsageMonthRow.partial | statement.excluded.partial,
                "updated_at": statement.excluded.updated_at,
            },
        ),
        rows,
    )


def add_to_month(session: Session, delta: UsageDelta, now: datetime) -> None:
    """Add a delta to its month total (within the caller's transaction)."""
    add_to_months(session, [(delta, now)])


def cap_totals(session: Session, keys: Iterable[CapKey]) -> dict[CapKey, MonthUsage | None]:
    """What the cap counts for each key, read in the caller's transaction (a few queries)."""
    wanted = set(keys)
    found: dict[CapKey, MonthUsage | None] = dict.fromkeys(wanted)
    sims = sorted({key[0] for key in wanted if key[0]})
    bare = sorted({key[1] for key in wanted if not key[0]})
    months = sorted({key[2] for key in wanted})
    columns = (
        func.sum(UsageMonthRow.received),
        func.sum(UsageMonthRow.sent),
        func.max(UsageMonthRow.router_id),
        func.max(UsageMonthRow.updated_at),
        func.sum(cast(UsageMonthRow.partial, Integer)),
    )
    for start in range(0, len(sims), _CHUNK):
        query = (
            select(UsageMonthRow.iccid, UsageMonthRow.month, *columns)
            .where(
                UsageMonthRow.iccid.in_(sims[start : start + _CHUNK]),
                UsageMonthRow.month.in_(months),
            )
            .group_by(UsageMonthRow.iccid, UsageMonthRow.month)
        )
        for iccid, month, received, sent, router_id, updated, partials in session.execute(query):
            key = (iccid, NO_SIM, month)
            if key in found:
                found[key] = MonthUsage(
                    router_id, iccid, month, int(received), int(sent), bool(partials),
                    as_utc(updated),
                )  # fmt: skip
    for start in range(0, len(bare), _CHUNK):
        rows = select(UsageMonthRow).where(
            UsageMonthRow.router_id.in_(bare[start : start + _CHUNK]),
            UsageMonthRow.iccid == NO_SIM,
            UsageMonthRow.month.in_(months),
        )
        for row in session.scalars(rows):
            key = (NO_SIM, row.router_id, row.month)
            if key in found:
                found[key] = _month(row)
    return found


def _sim_month(session: Session, iccid: str, month: str) -> MonthUsage | None:
    query = select(
        func.sum(UsageMonthRow.received),
        func.sum(UsageMonthRow.sent),
        func.max(UsageMonthRow.router_id),
        func.max(UsageMonthRow.updated_at),
        func.count(),
        func.sum(cast(UsageMonthRow.partial, Integer)),
    ).where(UsageMonthRow.iccid == iccid, UsageMonthRow.month == month)
    received, sent, router_id, updated, rows, partials = session.execute(query).one()
    if not rows:
        return None
    return MonthUsage(
        router_id, iccid, month, int(received), int(sent), bool(partials), as_utc(updated)
    )


def _state_values(state: UsageState) -> dict[str, Any]:
    def counter(reading: Counter | None) -> tuple[int | None, str | None]:
        if reading is None:
            return None, None
        return reading.value, reading.type.value

    received_value, received_type = counter(state.received)
    sent_value, sent_type = counter(state.sent)
    return {
        "router_id": state.router_id,
        "at": state.at,
        "iccid": state.iccid,
        "received_value": received_value,
        "received_type": received_type,
        "sent_value": sent_value,
        "sent_type": sent_type,
        "uptime_seconds": state.uptime_seconds,
        "uptime_clock": state.uptime_clock.value if state.uptime_clock else None,
        "month_received": state.month_received,
        "month_sent": state.month_sent,
        "month_cleared": state.month_cleared,
        "recent_rate": state.recent_rate,
    }


def _state(row: UsageStateRow) -> UsageState:
    def counter(value: int | None, kind: str | None) -> Counter | None:
        return Counter(value, CounterType(kind)) if value is not None and kind else None

    return UsageState(
        router_id=row.router_id,
        at=as_utc(row.at),
        iccid=row.iccid,
        received=counter(row.received_value, row.received_type),
        sent=counter(row.sent_value, row.sent_type),
        uptime_seconds=row.uptime_seconds,
        uptime_clock=UptimeClock(row.uptime_clock) if row.uptime_clock else None,
        month_received=row.month_received,
        month_sent=row.month_sent,
        month_cleared=row.month_cleared,
        recent_rate=row.recent_rate,
    )


def _month(row: UsageMonthRow) -> MonthUsage:
    iccid = row.iccid or None
    return MonthUsage(
        row.router_id, iccid, row.month, row.received, row.sent, row.partial, as_utc(row.updated_at)
    )
