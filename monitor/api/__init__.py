"""The HTTP face of the daemon: status API, health checks and /metrics."""

from monitor.api.app import Readiness, create_api
from monitor.api.sources import LiveState, StatusSources

__all__ = ["LiveState", "Readiness", "StatusSources", "create_api"]
