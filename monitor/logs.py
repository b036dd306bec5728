"""Logging set-up: one line per event on standard error, as text or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
            f".{int(record.msecs):03d}Z"
        )


def aborted_pipeline(record: logging.LogRecord) -> bool:
    """False for psycopg's warning on leaving a pipeline that a refused statement aborted.

    The batch writer sends each table's rows in one executemany, which psycopg runs in pipeline
    mode; when the database refuses a row, the writer catches the error and says which router
    and why (`monitor.writeback`), and psycopg then warns "error ignored terminating <Pipeline>:
    pipeline aborted" about the same error once more, naming only the connection."""
    message = record.getMessage()
    return not (message.startswith("error ignored terminating") and "pipeline aborted" in message)


def configure_logging(level: str, fmt: Literal["text", "json"]) -> None:
    """Send the package's logs (and uvicorn's errors) to stderr at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's per-request access log would drown the daemon's own lines.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # urllib3 logs whole URLs (query-string tokens included) at DEBUG.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
    # Alembic narrates every schema check (each /readyz); the daemon logs upgrades itself.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("psycopg").addFilter(aborted_pipeline)  # (added once however often called)
