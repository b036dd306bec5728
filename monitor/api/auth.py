"""Bearer-token authentication: a token's secret in, the `Principal` it stands for out."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.api.errors import UNAUTHORIZED, ApiError
from monitor.api.sources import StatusSources, blocking
from monitor.core.access import Principal, Role

MAX_TOKEN = 200  # ours are 47 characters; anything much longer is not one of ours

Authenticate = Callable[..., Awaitable[Principal]]


def authenticator(sources: StatusSources) -> Authenticate:
    """A FastAPI dependency giving the request's principal, or answering 401."""
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
            caller = await blocking(sources.access.authenticate, secret)
        if caller is None:
            raise ApiError(401, "the bearer token is not valid (unknown or revoked)", UNAUTHORIZED)
        token = caller.token
        return Principal(
            token.id, token.name, Role(token.role), caller.organisation, caller.children
        )

    return principal
