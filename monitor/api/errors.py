"""Every API error is JSON: `{"error": code, "message": text}` (plus `problems` for a 422).

Messages never carry secrets, SQL or stack traces; a missing object and another tenant's object
get the same 404 message, so an answer never tells one from the other.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.errors import MonitorError

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


class ProblemOut(BaseModel):
    """One thing wrong with a request: where (e.g. `query.limit`) and why."""

    where: str
    reason: str


class ErrorBody(BaseModel):
    """An error answer."""

    error: str
    message: str
    problems: list[ProblemOut] | None = None


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error answer with the status's code word."""
    body = ErrorBody(error=_CODES.get(status, "error"), message=message)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


class ApiError(Exception):
    """Raised by a route to answer with a JSON error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="router-monitor"'}
# What every /api/v1 route may answer besides success, for the OpenAPI document.
Responses = dict[int | str, dict[str, Any]]
STANDARD: Responses = {
    401: {"model": ErrorBody, "description": "no valid bearer token"},
    422: {"model": ErrorBody, "description": "a parameter is not valid"},
    503: {"model": ErrorBody, "description": "the database is unavailable"},
}
NOT_FOUND: Responses = {
    404: {"model": ErrorBody, "description": "no such object visible to this token"}
}


async def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: a mistyped filter (`?organization=`)
    must not silently answer with everything the token may see."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = {param.alias for param in dependant.query_params}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise RequestValidationError(
            [
                {"loc": ("query", name[:40]), "msg": "unknown parameter", "type": "extra_forbidden"}
                for name in unknown
            ]
        )


def install(api: FastAPI) -> None:
    """Make every error the API answers JSON of the one shape."""

    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, message, headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The offending input is not echoed back: it might be a secret pasted in the wrong place.
        problems = [
            ProblemOut(where=".".join(str(part) for part in error["loc"]), reason=error["msg"])
            for error in exc.errors()
        ]
        body = ErrorBody(
            error="invalid_request",
            message="; ".join(f"{p.where}: {p.reason}" for p in problems) or "invalid request",
            problems=problems,
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    @api.exception_handler(MonitorError)
    async def store_down(_: Request, exc: MonitorError) -> JSONResponse:
        log.error("API request failed: %s", exc)
        return error_response(503, "the monitor's database is unavailable; try again shortly")
