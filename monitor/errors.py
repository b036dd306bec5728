"""The one exception tree of router-monitor.

Every error the package raises on purpose derives from `MonitorError`. Errors about input an
operator gave us (a config file, a CSV file, an API request) carry every problem found, each
naming where it is and what is wrong, so that one run reports them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with some input: where it is (a key path, a line and column) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


class MonitorError(Exception):
    """Base of every error router-monitor raises on purpose."""


class InvalidInput(MonitorError):
    """Input was rejected; `problems` lists every reason, in input order."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self.report())

    def report(self) -> str:
        """A human report: a headline naming the source, then one problem per line."""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.source}: {count} {noun}:"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


class ConfigError(InvalidInput):
    """The configuration (file and environment) is not valid."""


class ImportRejected(InvalidInput):
    """A CSV import was rejected as a whole; nothing from it was stored."""


class StoreError(MonitorError):
    """The database could not do what was asked (unreachable, not migrated, conflict)."""


class NotFound(StoreError):
    """No such organisation, device or router."""


class StartupError(MonitorError):
    """The daemon cannot start: a port is taken, the database refuses, the schema is newer."""
