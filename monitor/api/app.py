"""The FastAPI application: `/healthz`, `/readyz`, `/metrics` and (later) `/api/v1`.

It is built from what it is handed (a readiness check, a metrics registry) and opens nothing
itself; `monitor.app` wires it to the real database and scheduler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from monitor import __version__

# Returns (ready, {check name: "ok" or why not}).
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]


def create_api(
    readiness: Readiness,
    registry: CollectorRegistry,
    router_series: Callable[[], str] = str,
) -> FastAPI:
    """Build the HTTP application over a readiness check, the daemon's own metrics registry and
    the per-router series' renderer."""
    api = FastAPI(
        title="router-monitor",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers HTTP."""
        return {"status": "ok", "version": __version__}

    @api.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Readiness: the database answers at the current schema and the scheduler runs."""
        ready, checks = await readiness()
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/metrics", tags=["metrics"], include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        own = await run_in_threadpool(generate_latest, registry)
        return Response(own + router_series().encode(), media_type=CONTENT_TYPE_LATEST)

    return api
