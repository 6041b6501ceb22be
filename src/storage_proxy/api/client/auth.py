"""Who is calling the client API: a user token (``Authorization: Bearer``) or nobody."""

from __future__ import annotations

from aiohttp import web

from ...core import caller
from ...core.errors import InvalidToken
from ...services.access import Actor
from ..keys import services


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def require_user(request: web.Request) -> Actor:
    """The user the bearer token names, as the actor the services check (401 without one)."""
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("send a user token as 'Authorization: Bearer <token>'")
    actor = Actor.for_user(services(request).tokens.verify_user(token))
    caller.identify(actor.principal)
    return actor


def as_grant(request: web.Request, actor: Actor) -> Actor:
    """A token-granted actor, named in the audit log."""
    caller.identify(actor.principal)
    return actor
