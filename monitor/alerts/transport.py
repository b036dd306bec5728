"""What every outbound channel shares: its error type, safe error texts, and tenacity retries.

Error texts name the host and the innermost reason ("Connection refused", "HTTP 503 ...") and
never a URL's credentials or query string, nor an exception's own text (which may carry them).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception
from tenacity import wait_random_exponential as _jittered

from monitor.errors import MonitorError

_LOG = logging.getLogger(__name__)
T = TypeVar("T")


class NotifyError(MonitorError):
    """Something was not delivered; `permanent` says that retrying cannot help."""

    def __init__(
        self,
        permanent: bool,
        reason: str,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.permanent = permanent
        self.reason = reason
        self.retry_after = retry_after  # seconds the receiver asked us to wait (Retry-After)
        self.status = status  # the HTTP status, when there was an answer
        super().__init__(reason)


def redact(url: str) -> str:
    """A URL fit for a log line: no user, password, query string or fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def cause(exc: BaseException) -> str:
    """The innermost reason ("Connection refused"): never the exception text, which has URLs."""
    if isinstance(exc, requests.Timeout | TimeoutError):
        return "timed out"
    reasons = (seen.strerror for seen in _chain(exc) if isinstance(seen, OSError) and seen.strerror)
    return next(reasons, type(exc).__name__)


def untrusted(exc: BaseException) -> bool:
    """Whether `exc` comes from a certificate we do not trust: someone must fix a setting."""
    return any(isinstance(seen, ssl.SSLCertVerificationError) for seen in _chain(exc))


def retry_after(value: str) -> float | None:
    """A `Retry-After` header's delay in seconds (the delta-seconds form), or None."""
    value = value.strip()
    return float(value) if value.isdigit() else None


def call_with_retries(
    call: Callable[[], T],
    what: str,
    retry_for: timedelta,
    *,
    backoff: timedelta = timedelta(seconds=1),
    max_backoff: timedelta = timedelta(minutes=1),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retrying transient `NotifyError`s with jittered exponential backoff.

    A `Retry-After` the receiver sent is honoured: the wait is at least that long, and if it
    reaches past the `retry_for` deadline the error is raised at once for the caller to wait
    it out (the outbox's backoff). Otherwise the last attempt falls on the deadline.
    Blocking: run it in a thread. A permanent failure, or the last transient one, is raised
    as `NotifyError`.
    """
    limit = retry_for.total_seconds()
    jitter = _jittered(backoff.total_seconds(), max_backoff.total_seconds())

    def asked(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return error.retry_after if isinstance(error, NotifyError) and error.retry_after else 0.0

    def remaining(state: RetryCallState) -> float:
        return max(0.0, limit - (state.seconds_since_start or 0.0))

    def wait(state: RetryCallState) -> float:
        return min(max(jitter(state), asked(state)), remaining(state))

    def stop(state: RetryCallState) -> bool:
        # Out of time, or asked to wait past the deadline: the caller's own backoff takes over.
        return remaining(state) <= 0 or asked(state) > remaining(state)

    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        _LOG.info(
            "%s: attempt %d failed (%s), next in %.1fs", what, state.attempt_number, error, pause
        )

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, NotifyError) and not exc.permanent),
        stop=stop,
        wait=wait,
        sleep=sleep,
        before_sleep=log,
        reraise=True,
    )
    return retrying(call)
