"""Who is calling the client API: a user token (``Authorization: Bearer``) or nobody."""

from __future__ import annotations

from aiohttp import web

from ...core.errors import InvalidToken
from ...services.tokens import UserClaims
from ..keys import ROOT_CTX


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def require_user(request: web.Request) -> UserClaims:
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("send a user token as 'Authorization: Bearer <token>'")
    return request.app[ROOT_CTX].tokens.verify_user(token)
