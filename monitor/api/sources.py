"""What the status API reads, handed in by the composition root.

The API imports neither the tracker nor the alert engine: it is given a `LiveState` (the
tracker fits it) and a callable returning the current alerts. Both are in-memory structures the
event loop mutates, so routes read them on the loop (async routes) and send only database calls
to a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from monitor.core.rules import RouterFacts
from monitor.core.sla import RESPONSE_WORKING_DAYS, due_at
from monitor.core.status import StatusBoard
from monitor.model import Alert, Router
from monitor.store import Inventory, SupportRequests
from monitor.store.access import AccessStore, PasswordCipher

P = ParamSpec("P")
T = TypeVar("T")


class LiveState(Protocol):
    """The tracked state of the routers (`monitor.tracking.Tracker` is one)."""

    @property
    def board(self) -> StatusBoard:
        """The latest poll outcome per router."""
        ...

    def facts(self, router: Router, now: datetime) -> RouterFacts:
        """Health, this month's usage and its forecast, and the latest sample of `router`."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StatusSources:
    """Everything the /api/v1 routes read or write."""

    inventory: Inventory
    access: AccessStore
    support: SupportRequests
    live: LiveState
    alerts: Callable[[], Iterable[Alert]]
    cap_bytes: int
    zone: ZoneInfo
    cipher: PasswordCipher | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = _utcnow
    # How soon a lost router's deactivate_sim request follows: an inventory refresh (one poll
    # interval) and an alert evaluation.
    follow_up: timedelta = timedelta(seconds=90)
    # The support portal's response clock, as the daemon's overdue rule counts it (`alerts:`).
    response_working_days: int = RESPONSE_WORKING_DAYS
    holiday_region: str = "ENG"

    def response_due(self, opened_at: datetime) -> datetime:
        """When the portal's response to a request opened at `opened_at` is due."""
        return due_at(opened_at, self.response_working_days, self.zone, self.holiday_region)

    @classmethod
    def build(
        cls,
        engine: Engine,
        live: LiveState,
        alerts: Callable[[], Iterable[Alert]],
        cap_bytes: int,
        zone: ZoneInfo,
        cipher: PasswordCipher | None,
        follow_up: timedelta = timedelta(seconds=90),
        response_working_days: int | None = None,
        holiday_region: str | None = None,
    ) -> StatusSources:
        """Sources over one database; `cipher` for device passwords (None: none shown); the
        response clock as configured (`alerts:`; None keeps the default, as the rules do)."""
        return cls(
            Inventory(engine),
            AccessStore(engine),
            SupportRequests(engine),
            live,
            alerts,
            cap_bytes,
            zone,
            cipher,
            follow_up=follow_up,
            response_working_days=(
                RESPONSE_WORKING_DAYS if response_working_days is None else response_working_days
            ),
            holiday_region="ENG" if holiday_region is None else holiday_region,
        )


async def blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking (database) call in a worker thread, off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)
