"""Client tokens: HS256 JWTs signed with ``[storage-proxy].secret``.

Two kinds (DESIGN §4): a *session token* for one operation, shaped exactly like Backend.AI's
(``op``, ``volume``, ``vfid``, ``relpath``, plus ``size`` and ``session`` for uploads), and a *user
token* naming a principal (``sub``, ``groups``) whose ACL rights are checked on every request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..core.errors import InvalidToken
from .hs256 import HS256, TokenError, TokenExpired

MIN_SECRET_BYTES = 32

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionClaims:
    op: str  # "download" | "upload"
    volume: str
    vfid: str
    relpath: str
    archive: bool = False
    size: int | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class UserClaims:
    sub: str
    groups: tuple[str, ...] = field(default_factory=tuple)


class TokenService:
    def __init__(self, secret: str, session_lifetime: timedelta) -> None:
        self._jwt = HS256(secret)
        self.session_lifetime = session_lifetime
        if len(secret.encode()) < MIN_SECRET_BYTES:
            log.warning(
                "[storage-proxy].secret is %d bytes; HS256 wants at least %d",
                len(secret.encode()),
                MIN_SECRET_BYTES,
            )

    def issue_session(self, claims: SessionClaims, lifetime: timedelta | None = None) -> str:
        payload: dict[str, Any] = {
            "op": claims.op,
            "volume": claims.volume,
            "vfid": claims.vfid,
            "relpath": claims.relpath,
            "exp": int(time.time() + (lifetime or self.session_lifetime).total_seconds()),
        }
        if claims.archive:
            payload["archive"] = True
        if claims.size is not None:
            payload["size"] = claims.size
        if claims.session is not None:
            payload["session"] = claims.session
        return self._jwt.encode(payload)

    def issue_user(self, sub: str, groups: list[str] | tuple[str, ...], lifetime: timedelta) -> str:
        payload = {
            "sub": sub,
            "groups": list(groups),
            "exp": int(time.time() + lifetime.total_seconds()),
        }
        return self._jwt.encode(payload)

    def _decode(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise InvalidToken("a token is required")
        try:
            return self._jwt.decode(token)
        except TokenExpired:
            raise InvalidToken("the token has expired") from None
        except TokenError as e:
            raise InvalidToken(f"the token is invalid: {e}") from None

    def verify_session(self, token: str | None, op: str) -> SessionClaims:
        data = self._decode(token)
        if data.get("op") != op:
            raise InvalidToken(f"this token is not for {op}")
        try:
            return SessionClaims(
                op=op,
                volume=str(data["volume"]),
                vfid=str(data["vfid"]),
                relpath=str(data["relpath"]),
                archive=bool(data.get("archive", False)),
                size=int(data["size"]) if data.get("size") is not None else None,
                session=str(data["session"]) if data.get("session") else None,
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("the token lacks required claims") from None

    def verify_user(self, token: str | None) -> UserClaims:
        data = self._decode(token)
        sub = data.get("sub")
        groups = data.get("groups", [])
        if not isinstance(sub, str) or not sub or not isinstance(groups, list):
            raise InvalidToken("a user token needs 'sub' (string) and 'groups' (list)")
        return UserClaims(sub=sub, groups=tuple(str(g) for g in groups))
