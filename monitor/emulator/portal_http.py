"""Wire helpers of the emulated support portal: credentials, JSON bodies, numbers, 429 answers."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets

from aiohttp import web

from monitor.emulator.portal_records import PortalError

RATE_LIMIT = 60  # the X-RateLimit-Limit advertised; only the header, the emulator never counts
_RULE_ID = "6f7a1c2b0a0a0b0c00d1e2f3a4b5c6d7"  # X-RateLimit-Rule names the instance's rule record


def authenticate(header: str, username: str, password: str, token: str | None) -> str:
    """The user an Authorization header (basic or bearer) authenticates as, else a 401."""
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "basic":
        # Decoded by hand: aiohttp.BasicAuth is deprecated from 3.14 on.
        with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError included
            login, colon, secret = (
                base64.b64decode(credential, validate=True).decode().partition(":")
            )
            if colon and _same(login, username) and _same(secret, password):
                return username
    # An empty token would let an empty "Bearer " in; a token is only set when one is meant.
    if scheme.lower() == "bearer" and token and _same(credential.strip(), token):
        return username
    raise PortalError(401, "User Not Authenticated", "Required to provide Auth information")


async def read_json(request: web.Request) -> object:
    """The request's JSON body, else ServiceNow's 400."""
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PortalError(
            400, "Exception while reading request", "The payload is not valid JSON."
        ) from exc


def query_number(request: web.Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (sysparm_limit, sysparm_offset), else a 400."""
    text = request.query.get(name, str(default))
    if not text.isdigit():
        raise PortalError(400, f"Invalid {name}", f"{name} must be a non-negative integer")
    return int(text)


def json_response(status: int, body: object) -> web.Response:
    """A JSON answer with the status given."""
    return web.json_response(body, status=status, content_type="application/json")


def rate_limited(retry_after: int, now: float) -> web.Response:
    """A 429 with Retry-After (seconds) and the X-RateLimit-* headers an instance sends."""
    body = PortalError(429, "Rate limit exceeded", "Too many requests, retry later").body()
    response = json_response(429, body)
    response.headers["Retry-After"] = str(retry_after)
    response.headers["X-RateLimit-Limit"] = str(RATE_LIMIT)
    response.headers["X-RateLimit-Remaining"] = "0"
    response.headers["X-RateLimit-Reset"] = str(int(now) + retry_after)
    response.headers["X-RateLimit-Rule"] = _RULE_ID
    return response


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())
