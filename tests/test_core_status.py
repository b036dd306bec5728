"""StatusBoard: keeps the last result per router and reports only changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.status import StatusBoard
from monitor.model import FailureKind, PollFailure, Sample

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ok(minutes: int) -> Sample:
    return Sample("r-1", T0 + timedelta(minutes=minutes))


def failed(minutes: int, kind: FailureKind = FailureKind.TIMEOUT) -> PollFailure:
    return PollFailure("r-1", T0 + timedelta(minutes=minutes), kind, "no answer within 10s")


def test_changes_are_reported_once() -> None:
    board = StatusBoard()
    messages = [
        board.record(ok(0)),
        board.record(ok(1)),
        board.record(failed(2)),
        board.record(failed(3)),
        board.record(failed(4, FailureKind.AUTH)),
        board.record(ok(5)),
    ]
    assert messages == [
        None,
        None,
        "router r-1 does not answer: timeout (no answer within 10s)",
        None,
        "router r-1 does not answer: auth (no answer within 10s)",
        "router r-1 answers again",
    ]


def test_status_keeps_last_sample_and_counts_failures() -> None:
    board = StatusBoard()
    board.record(ok(0))
    board.record(failed(1))
    board.record(failed(2))
    status = board.get("r-1")
    assert status is not None
    assert not status.reachable
    assert status.failures_in_row == 2
    assert status.last_sample == ok(0)
    assert status.last_success == T0
    assert len(board) == 1
    assert [router_id for router_id, _ in board] == ["r-1"]
    board.forget("r-1")
    assert board.get("r-1") is None


def test_first_poll_failing_is_reported() -> None:
    board = StatusBoard()
    assert board.record(failed(0)) == "router r-1 does not answer: timeout (no answer within 10s)"
    status = board.get("r-1")
    assert status is not None
    assert (status.last_sample, status.last_success, status.failures_in_row) == (None, None, 1)
