"""Bearer-token authentication: a token's secret in, the `Principal` it stands for out.

A token found valid is remembered for `TOKEN_SECONDS` (by its hash, as the database holds it),
so a portal asking 200 times a second costs one database lookup per token every few seconds
rather than one per request. A revocation therefore takes effect within `TOKEN_SECONDS`
(docs/api.md); unknown tokens are never remembered, so a new token works at once.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from cachetools import TTLCache
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.api.errors import UNAUTHORIZED, ApiError
from monitor.api.sources import StatusSources
from monitor.core.access import Principal, Role
from monitor.store.access import Caller, hash_secret

MAX_TOKEN = 200  # ours are 47 characters; anything much longer is not one of ours
TOKEN_SECONDS: Final = 5.0
"""How long a token found valid is trusted without asking the database again."""

Authenticate = Callable[..., Awaitable[Principal]]


def authenticator(
    sources: StatusSources,
    *,
    seconds: float = TOKEN_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Authenticate:
    """A FastAPI dependency giving the request's principal, or answering 401."""
    known: TTLCache[str, Caller] = TTLCache(maxsize=10_000, ttl=seconds, timer=clock)
    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="token",
        description="A token from `monitor token create` (shown once when created).",
    )

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise ApiError(
                401, "a bearer token is required: Authorization: Bearer <token>", UNAUTHORIZED
            )
        secret = credentials.credentials
        caller = None
        if len(secret) <= MAX_TOKEN:
            key = hash_secret(secret)
            caller = known.get(key)
            if caller is None:
                caller = await sources.read(sources.access.authenticate, secret)
                if caller is not None:
                    known[key] = caller
        if caller is None:
            raise ApiError(401, "the bearer token is not valid (unknown or revoked)", UNAUTHORIZED)
        token = caller.token
        return Principal(
            token.id, token.name, Role(token.role), caller.organisation, caller.children
        )

    return principal
