"""The latest poll outcome per router, and when it is worth telling an operator.

A flapping link would flood the log if every failed poll were logged; like Home Assistant's
update coordinator, this keeps the last result per router and reports only changes: a router
that stops answering (and why), one whose failure changes kind, and one that recovers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from monitor.model import PollFailure, PollResult, PollStatus, Sample

__all__ = ["PollStatus", "StatusBoard"]


class StatusBoard:
    """Latest `PollStatus` per router id."""

    def __init__(self) -> None:
        self._statuses: dict[str, PollStatus] = {}

    def record(self, result: PollResult) -> str | None:
        """Keep `result`; return a message if the router's reachability or failure changed."""
        before = self._statuses.get(result.router_id)
        if isinstance(result, Sample):
            self._statuses[result.router_id] = PollStatus(result, result, result.at, 0)
            if before is not None and not before.reachable:
                return f"router {result.router_id} answers again"
            return None
        if before is None:
            self._statuses[result.router_id] = PollStatus(result, None, None, 1)
            return f"router {result.router_id} does not answer: {_why(result)}"
        failures = before.failures_in_row + 1
        self._statuses[result.router_id] = replace(before, last=result, failures_in_row=failures)
        if before.reachable or (
            isinstance(before.last, PollFailure) and before.last.kind != result.kind
        ):
            return f"router {result.router_id} does not answer: {_why(result)}"
        return None

    def get(self, router_id: str) -> PollStatus | None:
        """The router's status, or None if it was never polled."""
        return self._statuses.get(router_id)

    def forget(self, router_id: str) -> None:
        """Drop a router that left the inventory."""
        self._statuses.pop(router_id, None)

    def __iter__(self) -> Iterator[tuple[str, PollStatus]]:
        return iter(list(self._statuses.items()))

    def __len__(self) -> int:
        return len(self._statuses)


def _why(failure: PollFailure) -> str:
    return f"{failure.kind.value} ({failure.detail})"
