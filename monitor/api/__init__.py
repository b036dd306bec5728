"""The HTTP face of the daemon: status API, health checks and /metrics."""

from monitor.api.app import Readiness, create_api

__all__ = ["Readiness", "create_api"]
