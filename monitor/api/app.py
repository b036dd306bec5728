"""The FastAPI application: `/healthz`, `/readyz`, `/metrics` and the status API `/api/v1`.

It is built from what it is handed (a readiness check, a metrics registry, the status sources)
and opens nothing itself; `monitor.app` wires it to the real database, tracker and alert engine.
Without sources (tests of the health endpoints) the /api/v1 routes are left out.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import __version__
from monitor.api import errors
from monitor.api.auth import authenticator
from monitor.api.devices import device_routes
from monitor.api.routes import read_routes
from monitor.api.sources import StatusSources
from monitor.metrics import RequestTimes

# Returns (ready, {check name: "ok" or why not}).
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]

DESCRIPTION = """The status of the programme's 4G routers, for the support portal and the LAs,
trusts and schools it serves. Every `/api/v1` route needs a bearer token (`monitor token
create`); each token sees only its organisation's objects (an LA or trust also its schools'),
and anything else answers 404. See docs/api.md."""


def create_api(
    readiness: Readiness,
    registry: CollectorRegistry,
    router_series: Callable[[], str | bytes] = str,
    sources: StatusSources | None = None,
    metrics_token: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the HTTP application over a readiness check, the daemon's own metrics registry,
    the per-router series' renderer (text, or UTF-8 bytes), (for /api/v1) the status sources
    and (if given) the bearer token /metrics asks for; `clock` times how long a valid token is
    remembered. Registers the request-time histogram on `registry`: one application per
    registry."""
    api = FastAPI(
        title="router-monitor",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        # FastAPI's own OpenTelemetry instrumentation off: the process's metrics are Prometheus
        # ones (`/metrics`, router_monitor_http_request_seconds), and with it on, every request
        # asked OpenTelemetry for providers nobody configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(api)

    api.add_middleware(NoStore)
    api.add_middleware(Timed, times=RequestTimes(registry))

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

    expected = metrics_token.encode("utf-8") if metrics_token else None
    # One exposition rendered at a time (100k routers are ~100 MB of text): scrapes that
    # arrive meanwhile wait for their turn rather than each holding a copy.
    rendering = asyncio.Lock()

    def exposition() -> bytes:
        series = router_series()
        return generate_latest(registry) + (
            series if isinstance(series, bytes) else series.encode()
        )

    @api.get("/metrics", tags=["metrics"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition; behind a bearer token if one is configured (the series
        name every tenant's routers, with their IMEI and ICCID). Rendered on a worker thread,
        so polls and API calls go on meanwhile (`RouterSeries.render` is thread-safe)."""
        if expected is not None and not _bearer_matches(request, expected):
            return errors.error_response(
                401, "a bearer token is required for /metrics", errors.UNAUTHORIZED
            )
        async with rendering:
            body = await asyncio.to_thread(exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    if sources is not None:
        authenticate = authenticator(sources, clock=clock)
        api.include_router(read_routes(sources, authenticate))
        api.include_router(device_routes(sources, authenticate))
    return api


class NoStore:
    """ASGI middleware: `Cache-Control: no-store` on /api/v1 answers (tenant-scoped, some with
    passwords: never for a shared cache), except the OpenAPI document.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs each
    request through an extra task and memory stream, which cost more CPU than some of the
    routes themselves under load (bench at 200 requests a second)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith("/api/v1/") and not path.endswith(".json")):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)


class Timed:
    """ASGI middleware: each HTTP request's time, by the route template it matched
    ("unmatched" if none), into `RequestTimes`.

    Plain ASGI for the reason NoStore is. Not prometheus-fastapi-instrumentator: it matches
    every request against every route a second time and builds a Request and a Response object
    to label one histogram, per request, on the path whose CPU the status API's latency target
    is about (docs/performance.md); FastAPI already leaves the matched route in the scope."""

    def __init__(self, app: ASGIApp, times: RequestTimes) -> None:
        self.app = app
        self.times = times

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # if the application fails before it answers

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.times.observe(
                _route_of(scope), _method_of(scope), code, time.perf_counter() - started
            )


METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_of(scope: Scope) -> str:
    """The template of the route a request matched: FastAPI's routes leave themselves in the
    scope; Starlette's (the OpenAPI document, the docs page) only their endpoint, and theirs are
    fixed paths with no parameter, so the path is the template. "unmatched" for no route (a
    404, or a redirect to the path with or without its trailing slash)."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    return str(scope["path"]) if "endpoint" in scope else "unmatched"


def _method_of(scope: Scope) -> str:
    """The request's method as a label: any method not in METHODS is "other", so that a client
    cannot add series by inventing methods."""
    method = str(scope["method"])
    return method if method in METHODS else "other"


def _bearer_matches(request: Request, expected: bytes) -> bool:
    """Whether the request's `Authorization: Bearer <token>` is `expected` (in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), expected)
