"""Poll results waiting to be stored, coalesced per router, and written a batch per transaction.

`PendingWrites` keeps, for each router, only what the database needs to catch up: its newest
usage readings, the sum of its deltas per SIM and month, its newest health state and the health
transitions not yet written. Applying those in one transaction is the same as applying every
poll's write in turn, so a router's readings and the month totals they produced are still
committed together: a crash before the commit leaves the older readings with the older totals,
and the next start counts again from those (docs/usage-accounting.md). Memory is bounded by the
number of routers, however long the database is away; only the transition history is capped.

`BatchWriter.write` is blocking: the daemon runs it on one writer thread of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError
from monitor.model import HealthState, MonthUsage, Transition, UsageDelta, UsageState
from monitor.store.db import reading, writing
from monitor.store.health import write_healths
from monitor.store.usage import NO_SIM, CapKey, add_to_months, cap_key, cap_totals, write_states

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # never used: queued bytes always carry a time


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


@dataclass(slots=True)
class RouterWrites:
    """What one router still needs stored."""

    router_id: str
    usage: UsageState | None = None
    cap: CapKey | None = None  # what the cap counts for the router's newest sample
    months: dict[tuple[str, str], MonthSum] = field(default_factory=dict)  # (iccid, month)
    health: HealthState | None = None
    transitions: list[Transition] = field(default_factory=list)

    def absorb(self, older: RouterWrites) -> None:
        """Fold in writes queued before these (the newer state wins, bytes add up)."""
        if self.usage is None:
            self.usage, self.cap = older.usage, older.cap
        for key, sums in older.months.items():
            self.months.setdefault(key, MonthSum()).add(
                sums.received, sums.sent, sums.partials, sums.at
            )
        self.health = self.health or older.health
        self.transitions[:0] = older.transitions

    def deltas(self) -> list[UsageDelta]:
        """The summed bytes as deltas, one per SIM and month."""
        return [
            UsageDelta(self.router_id, iccid or None, month, s.received, s.sent, s.partials > 0)
            for (iccid, month), s in self.months.items()
        ]


class PendingWrites:
    """Poll results not yet stored, one entry per router, oldest first."""

    def __init__(self, max_transitions: int = 100_000) -> None:
        self._routers: dict[str, RouterWrites] = {}
        self._max_transitions = max_transitions
        self._transitions = 0
        self.dropped_transitions = 0  # history rows given up because the queue was full

    def __len__(self) -> int:
        return len(self._routers)

    def _entry(self, router_id: str) -> RouterWrites:
        entry = self._routers.get(router_id)
        if entry is None:
            entry = self._routers[router_id] = RouterWrites(router_id)
        return entry

    def add_usage(
        self, state: UsageState, deltas: Iterable[UsageDelta], at: datetime, month: str
    ) -> None:
        """Queue a router's new readings and the bytes they counted (observed at `at`)."""
        entry = self._entry(state.router_id)
        entry.usage = state
        entry.cap = cap_key(state.router_id, state.iccid, month)
        for delta in deltas:
            key = (delta.iccid or NO_SIM, delta.month)
            entry.months.setdefault(key, MonthSum()).add(
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

    def take(self, limit: int) -> list[RouterWrites]:
        """Remove and return up to `limit` routers' writes, oldest first."""
        if len(self._routers) <= limit:
            batch = list(self._routers.values())
            self._routers = {}
        else:
            ids = [router_id for router_id, _ in zip(self._routers, range(limit), strict=False)]
            batch = [self._routers.pop(router_id) for router_id in ids]
        self._transitions -= sum(len(entry.transitions) for entry in batch)
        return batch

    def put_back(self, batch: Sequence[RouterWrites]) -> None:
        """Return a batch that could not be stored, ahead of what was queued since."""
        newer = self._routers
        self._routers = {}
        for entry in batch:
            later = newer.pop(entry.router_id, None)
            if later is not None:
                later.absorb(entry)
                entry = later
            self._routers[entry.router_id] = entry
        self._routers.update(newer)
        self._transitions = sum(len(entry.transitions) for entry in self._routers.values())


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch write did: the cap totals re-read after it, and what it could not store."""

    totals: dict[CapKey, MonthUsage | None]
    refused: list[str]  # routers the database refused (no longer in the inventory): dropped
    unwritten: list[RouterWrites]  # left for a later try, with the error that stopped them
    error: StoreError | None = None


class BatchWriter:
    """Writes batches of `RouterWrites`, one transaction per batch (blocking)."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def write(self, batch: Sequence[RouterWrites]) -> BatchResult:
        """Store the batch in one transaction and re-read its cap totals in the same one.

        If the database refuses a router's rows (it left the inventory while its poll was in
        flight), the others are stored one transaction each and that router's are dropped. Any
        other failure raises StoreError with nothing of the batch stored.
        """
        keys = _cap_keys(batch)
        try:
            with writing(self._sessions, f"storing poll results of {len(batch)} routers") as s:
                _write(s, batch)
                return BatchResult(cap_totals(s, keys), [], [])
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        return self._one_by_one(batch, keys)

    def _one_by_one(self, batch: Sequence[RouterWrites], keys: set[CapKey]) -> BatchResult:
        refused: list[str] = []
        for index, entry in enumerate(batch):
            try:
                with writing(self._sessions, f"storing poll results of {entry.router_id}") as s:
                    _write(s, [entry])
            except StoreError as exc:
                if isinstance(exc.__cause__, IntegrityError):
                    refused.append(entry.router_id)
                    continue
                # What came before is committed: only the rest may be tried again.
                return BatchResult({}, refused, list(batch[index:]), exc)
        try:
            with reading(self._sessions, "usage") as session:
                totals = cap_totals(session, keys)
        except StoreError:
            totals = {}  # stored all the same; the totals are re-read with the next batch
        return BatchResult(totals, refused, [])


def _write(session: Session, batch: Sequence[RouterWrites]) -> None:
    # One statement per table for the whole batch, executed for each row: per-row statements
    # cost a millisecond or two each in SQLAlchemy, more than the rest of a poll.
    write_states(session, [entry.usage for entry in batch if entry.usage is not None])
    add_to_months(
        session,
        [
            (delta, entry.months[(delta.iccid or NO_SIM, delta.month)].at or _EPOCH)
            for entry in batch
            for delta in entry.deltas()
        ],
    )
    write_healths(
        session,
        [entry.health for entry in batch if entry.health is not None],
        [transition for entry in batch for transition in entry.transitions],
    )


def _cap_keys(batch: Iterable[RouterWrites]) -> set[CapKey]:
    keys: set[CapKey] = set()
    for entry in batch:
        if entry.cap is not None:
            keys.add(entry.cap)
        keys.update(cap_key(entry.router_id, iccid, month) for iccid, month in entry.months)
    return keys
