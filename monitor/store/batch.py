"""Poll results waiting to be stored, coalesced per router, and written a batch per transaction.

`PendingWrites` keeps, for each router, only what the database needs to catch up: its newest
usage readings, the sum of its deltas per SIM and month, its newest health state and the health
transitions not yet written. Applying those in one transaction is the same as applying every
poll's write in turn, so a router's readings and the month totals they produced are still
committed together: a crash before the commit leaves the older readings with the older totals,
and the next start counts again from those (docs/usage-accounting.md). Memory is bounded by the
number of routers, however long the database is away; only the transition history is capped.

Applying a router's bytes is idempotent. Its bytes are kept in `Step`s, each naming the time of
the stored readings it was counted from (`base`) and of the readings it ends with (`upto`). The
transaction reads each router's stored readings time first and adds only the steps that follow
it: a batch whose commit went through but whose answer was lost is not added twice when it is
tried again (its readings are already the stored ones), and readings that are not the ones the
bytes were counted from are stored without the bytes (counted low, never twice).

One router's bad rows never hold up the others: rows the database refuses (an integrity or data
error) are found by halving the batch, each half in a SAVEPOINT, down to the one router, whose
rows are dropped with the reason; the rest is committed in the same transaction. Only a database
that cannot be used at all (unreachable, timed out, schema missing) fails the whole batch.

`BatchWriter.write` is blocking: the daemon runs it on one writer thread of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.model import (
    HealthState,
    LiveRecord,
    MonthUsage,
    Transition,
    UsageDelta,
    UsageState,
)
from monitor.store.db import as_utc, describe, store_error
from monitor.store.health import write_healths
from monitor.store.live import write_lives
from monitor.store.tables import UsageStateRow
from monitor.store.usage import NO_SIM, CapKey, add_to_months, cap_key, cap_totals, write_states

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # never used: queued bytes always carry a time
# The base of bytes whose stored readings are not known (queued without saying): applied to
# whatever readings are stored, unless those are already the newest (written before).
ANY_BASE = datetime(1, 1, 1, tzinfo=UTC)
# Steps kept per router: more only after many commits in doubt; the oldest are then merged.
MAX_STEPS = 8
_CHUNK = 500


@dataclass(slots=True)
class MonthSum:
    """Bytes not yet stored for one SIM (or SIM-less router) and month."""

    received: int = 0
    sent: int = 0
    partials: int = 0  # how many of the summed deltas were partial
    at: datetime | None = None  # the newest poll they came from

    def add(self, received: int, sent: int, partials: int, at: datetime | None) -> None:
        """Add bytes to the sum; keep the newest time."""
        self.received += received
        self.sent += sent
        self.partials += partials
        if at is not None and (self.at is None or at > self.at):
            self.at = at


Months = dict[tuple[str, str], MonthSum]  # (iccid or NO_SIM, month)


@dataclass(slots=True)
class Step:
    """Bytes counted from the readings taken at `base` (None: none stored) up to `upto`."""

    base: datetime | None
    upto: datetime
    months: Months = field(default_factory=dict)
    sealed: bool = False  # was in a batch whose commit is in doubt: its end stays a boundary

    def merge(self, newer: Step) -> None:
        """Take in the step that follows this one."""
        _add_months(self.months, newer.months)
        self.upto, self.sealed = newer.upto, newer.sealed


@dataclass(slots=True)
class RouterWrites:
    """What one router still needs stored."""

    router_id: str
    usage: UsageState | None = None
    cap: CapKey | None = None  # what the cap counts for the router's newest sample
    steps: list[Step] = field(default_factory=list)
    health: HealthState | None = None
    transitions: list[Transition] = field(default_factory=list)
    live: LiveRecord | None = None  # what readers in other processes are shown

    @property
    def months(self) -> Months:
        """Every queued byte of the router, summed per SIM and month."""
        return _summed(self.steps)

    def absorb(self, older: RouterWrites) -> None:
        """Fold in writes queued before these (the newer state wins, bytes add up)."""
        if self.usage is None:
            self.usage, self.cap = older.usage, older.cap
        steps = list(older.steps)
        if steps and self.steps and not steps[-1].sealed:
            steps[-1].merge(self.steps[0])
            steps += self.steps[1:]
        else:
            steps += self.steps
        self.steps = _capped(steps)
        self.health = self.health or older.health
        self.transitions[:0] = older.transitions
        self.live = self.live or older.live

    def deltas(self) -> list[UsageDelta]:
        """The summed bytes as deltas, one per SIM and month."""
        return _deltas(self.router_id, self.months)


class PendingWrites:
    """Poll results not yet stored, one entry per router, oldest first."""

    def __init__(self, max_transitions: int = 100_000) -> None:
        self._routers: dict[str, RouterWrites] = {}
        self._max_transitions = max_transitions
        self._transitions = 0  # queued and in flight: what the cap counts
        self.dropped_transitions = 0  # history rows given up because the queue was full

    def __len__(self) -> int:
        return len(self._routers)

    def _entry(self, router_id: str) -> RouterWrites:
        entry = self._routers.get(router_id)
        if entry is None:
            entry = self._routers[router_id] = RouterWrites(router_id)
        return entry

    def add_usage(
        self,
        state: UsageState,
        deltas: Iterable[UsageDelta],
        at: datetime,
        month: str,
        base: datetime | None = ANY_BASE,
    ) -> None:
        """Queue a router's new readings and the bytes they counted (observed at `at`) from the
        readings taken at `base` (None: there were none; ANY_BASE: not known)."""
        entry = self._entry(state.router_id)
        entry.usage = state
        entry.cap = cap_key(state.router_id, state.iccid, month)
        step = entry.steps[-1] if entry.steps and not entry.steps[-1].sealed else None
        if step is None:
            step = Step(base, state.at)
            entry.steps.append(step)
            entry.steps[:] = _capped(entry.steps)
        step.upto = state.at
        for delta in deltas:
            key = (delta.iccid or NO_SIM, delta.month)
            step.months.setdefault(key, MonthSum()).add(
                delta.received, delta.sent, int(delta.partial), at
            )

    def add_health(self, state: HealthState, transition: Transition | None) -> bool:
        """Queue a router's health; False if the transition's history row had to be dropped."""
        entry = self._entry(state.router_id)
        entry.health = state
        if transition is None:
            return True
        if self._transitions >= self._max_transitions:
            self.dropped_transitions += 1
            return False
        entry.transitions.append(transition)
        self._transitions += 1
        return True

    def add_live(self, record: LiveRecord) -> None:
        """Queue a router's live record (the newest replaces any queued)."""
        self._entry(record.router_id).live = record

    def take(self, limit: int) -> list[RouterWrites]:
        """Remove and return up to `limit` routers' writes, oldest first (their transitions
        still count against the cap until `settled`)."""
        if len(self._routers) <= limit:
            batch = list(self._routers.values())
            self._routers = {}
        else:
            ids = [router_id for router_id, _ in zip(self._routers, range(limit), strict=False)]
            batch = [self._routers.pop(router_id) for router_id in ids]
        return batch

    def settled(self, batch: Iterable[RouterWrites]) -> None:
        """Taken writes are out of the queue for good (stored or dropped)."""
        self._transitions -= sum(len(entry.transitions) for entry in batch)

    def put_back(self, batch: Sequence[RouterWrites], in_doubt: bool = False) -> None:
        """Return a batch that could not be stored, ahead of what was queued since. `in_doubt`:
        it may have been committed all the same, so its readings stay a boundary between steps.
        """
        newer = self._routers
        self._routers = {}
        for entry in batch:
            if in_doubt and entry.steps:
                entry.steps[-1].sealed = True
            later = newer.pop(entry.router_id, None)
            if later is not None and later is not entry:  # (never fold an entry into itself)
                later.absorb(entry)
                entry = later
            self._routers[entry.router_id] = entry
        self._routers.update(newer)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch write did: the cap totals re-read after it, and what it could not store."""

    totals: dict[CapKey, MonthUsage | None]
    refused: dict[str, str]  # router id -> why the database refused its rows: dropped
    unwritten: list[RouterWrites]  # left for a later try, with the error that stopped them
    error: StoreError | None = None
    in_doubt: bool = False  # the commit failed: it may have gone through all the same
    already: list[str] = field(default_factory=list)  # stored before (a commit in doubt)
    not_counted: dict[str, int] = field(default_factory=dict)  # router id -> bytes skipped


@dataclass(slots=True)
class _Plan:
    """What is written of one router in this transaction."""

    entry: RouterWrites
    state: UsageState | None
    months: Months


class BatchWriter:
    """Writes batches of `RouterWrites`, one transaction per batch (blocking)."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def write(self, batch: Sequence[RouterWrites]) -> BatchResult:
        """Store the batch in one transaction and re-read its cap totals in the same one.

        Rows the database refuses are dropped, router by router, and the rest stored. If the
        database cannot be used (unreachable, timed out, schema missing) nothing is stored and
        the whole batch comes back as unwritten, `in_doubt` if it failed while committing.
        """
        keys = _cap_keys(batch)
        refused: dict[str, str] = {}
        committing = False
        try:
            with self._sessions() as session, session.begin():
                if session.get_bind().dialect.name == "sqlite":
                    # Take the write lock before reading the stored readings' times.
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
                plans = _plans(session, batch)
                _isolate(session, plans, refused)
                totals = cap_totals(session, keys)
                committing = True
        except SQLAlchemyError as exc:
            error = store_error(exc, f"storing poll results of {len(batch)} routers")
            return BatchResult({}, {}, list(batch), error, in_doubt=committing)
        kept = [plan for plan in plans if plan.entry.router_id not in refused]
        already = [p.entry.router_id for p in kept if p.state is None and p.entry.usage is not None]
        skipped = {
            p.entry.router_id: sum(s.received + s.sent for s in p.entry.months.values())
            for p in kept
            if p.state is not None and not p.months and p.entry.months
        }
        return BatchResult(totals, refused, [], already=already, not_counted=skipped)


def _plans(session: Session, batch: Sequence[RouterWrites]) -> list[_Plan]:
    """Decide what of each router to write, from the times of its stored readings."""
    # Sorted: two pollers lock the rows in the same order (no deadlock).
    ids = sorted(entry.router_id for entry in batch if entry.usage is not None)
    stored: dict[str, datetime] = {}
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(UsageStateRow.router_id, UsageStateRow.at)
            .where(UsageStateRow.router_id.in_(ids[start : start + _CHUNK]))
            .with_for_update()
        )
        stored.update((router_id, as_utc(at)) for router_id, at in session.execute(query))
    return [_plan(entry, stored.get(entry.router_id)) for entry in batch]


def _plan(entry: RouterWrites, stored: datetime | None) -> _Plan:
    if entry.usage is None:
        return _Plan(entry, None, {})
    steps = entry.steps
    moved = any(step.base != step.upto for step in steps)
    if stored is not None and stored == entry.usage.at and moved:
        return _Plan(entry, None, {})  # written by a commit whose answer was lost
    for index, step in enumerate(steps):
        if step.base == stored:
            return _Plan(entry, entry.usage, _summed(steps[index:]))
    if steps and steps[0].base == ANY_BASE:
        return _Plan(entry, entry.usage, _summed(steps))
    # The stored readings are not those the bytes were counted from (an earlier write was
    # refused, or another writer): store the readings, so the next bytes apply, not these.
    return _Plan(entry, entry.usage, {})


def _isolate(session: Session, plans: list[_Plan], refused: dict[str, str]) -> None:
    """Write the plans in a SAVEPOINT; if the database refuses a row, halve and retry each half,
    down to the router whose rows it refuses (dropped, with the reason)."""
    if not plans:
        return
    try:
        with session.begin_nested():
            _write(session, plans)
    except Exception as exc:
        if not _refused_row(exc):
            raise
        if len(plans) == 1:
            refused[plans[0].entry.router_id] = describe(exc)
            return
        middle = len(plans) // 2
        _isolate(session, plans[:middle], refused)
        _isolate(session, plans[middle:], refused)


def _refused_row(exc: BaseException) -> bool:
    """Whether the error is about the values of a row (not the database being unusable)."""
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    if isinstance(exc, DBAPIError):
        # Unreachable, timed out (OperationalError, InterfaceError) or unusable as a whole
        # (schema missing, no privilege: ProgrammingError, InternalError): retried later.
        return False
    # A value the driver cannot bind (too large an integer, say).
    return isinstance(exc, (StatementError, ValueError, OverflowError))


def _write(session: Session, plans: Sequence[_Plan]) -> None:
    # One statement per table for the whole batch, executed for each row: per-row statements
    # cost a millisecond or two each in SQLAlchemy, more than the rest of a poll.
    write_states(session, [plan.state for plan in plans if plan.state is not None])
    add_to_months(
        session,
        [
            (delta, plan.months[(delta.iccid or NO_SIM, delta.month)].at or _EPOCH)
            for plan in plans
            for delta in _deltas(plan.entry.router_id, plan.months)
        ],
    )
    write_healths(
        session,
        [plan.entry.health for plan in plans if plan.entry.health is not None],
        [transition for plan in plans for transition in plan.entry.transitions],
    )
    write_lives(session, [plan.entry.live for plan in plans if plan.entry.live is not None])


def _add_months(into: Months, more: Months) -> None:
    for key, sums in more.items():
        into.setdefault(key, MonthSum()).add(sums.received, sums.sent, sums.partials, sums.at)


def _summed(steps: Iterable[Step]) -> Months:
    months: Months = {}
    for step in steps:
        _add_months(months, step.months)
    return months


def _capped(steps: list[Step]) -> list[Step]:
    while len(steps) > MAX_STEPS:
        # The boundary between the two oldest is given up: a retry that finds the readings of
        # that boundary stored then stores the readings without the bytes (counted low).
        first = steps.pop(0)
        first.merge(steps[0])
        steps[0] = first
    return steps


def _deltas(router_id: str, months: Months) -> list[UsageDelta]:
    return [
        UsageDelta(router_id, iccid or None, month, s.received, s.sent, s.partials > 0)
        for (iccid, month), s in months.items()
    ]


def _cap_keys(batch: Iterable[RouterWrites]) -> set[CapKey]:
    keys: set[CapKey] = set()
    for entry in batch:
        if entry.cap is not None:
            keys.add(entry.cap)
        keys.update(cap_key(entry.router_id, iccid, month) for iccid, month in entry.months)
    return keys
