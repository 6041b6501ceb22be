"""Client tokens: HS256 JWTs signed with ``[storage-proxy].secret``.

Two kinds (DESIGN §4): a *session token* for one operation, shaped exactly like Backend.AI's
(``op``, ``volume``, ``vfid``, ``relpath``, plus ``size`` and ``session`` for uploads), and a *user
token* naming a principal (``sub``, ``groups``) whose ACL rights are checked on every request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core.errors import InvalidParameter, InvalidToken, InvalidTokenClaims
from .hs256 import HS256, TokenError, TokenExpired

MIN_SECRET_BYTES = 32
#: A principal id as ACL entries name it (``user:<id>``, ``group:<id>``): no blanks, no colon.
PRINCIPAL_ID = re.compile(r"[^\s:]{1,255}")
MAX_GROUPS = 256
#: Verified tokens remembered (by their text) so that a token presented again -- every chunk of
#: an upload, every GET of a signed or session link -- skips the HMAC and the JSON parse.
VERIFIED_CACHE_ENTRIES = 50_000

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionClaims:
    op: str  # "download" | "upload"
    volume: str
    vfid: str
    relpath: str
    archive: bool = False
    #: A kept version of the file (a download of that version, never an archive).
    version: str | None = None
    size: int | None = None
    session: str | None = None
    #: The user a link was minted for (``by``): redeeming it checks they still hold the right.
    by: UserClaims | None = None
    exp: float | None = None  # when the token stops being good (seconds since the epoch)


@dataclass(frozen=True, slots=True)
class ArchiveClaims:
    """Several files and directories of one vfolder as one zip (Backend.AI 26.09's archive
    download token: ``operation``, ``volume``, ``virtual_folder_id``, ``files``, ``filename``)."""

    volume: str
    vfid: str
    files: tuple[str, ...]
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class UserClaims:
    sub: str
    groups: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class UserTokenPolicy:
    """How long minted user tokens live: ``[storage-proxy] user-token-expire`` / ``-max-expire``."""

    default_lifetime: timedelta
    max_lifetime: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UserTokenPolicy:
        sp = config["storage-proxy"]
        return cls(sp["user-token-expire"], sp["user-token-max-expire"])

    def lifetime(self, requested: timedelta | None) -> timedelta:
        if requested is None:
            return min(self.default_lifetime, self.max_lifetime)
        if requested.total_seconds() <= 0:
            raise InvalidParameter("expires_in must be positive")
        if requested > self.max_lifetime:
            raise InvalidParameter(
                f"expires_in {int(requested.total_seconds())}s exceeds "
                f"[storage-proxy] user-token-max-expire ({int(self.max_lifetime.total_seconds())}s)"
            )
        return requested


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


def _principal_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not PRINCIPAL_ID.fullmatch(value):
        raise InvalidParameter(
            f"{what} must be 1-255 characters without blanks or ':': {str(value)[:40]!r}"
        )
    return value


class TokenService:
    def __init__(
        self,
        secret: str,
        session_lifetime: timedelta,
        user_policy: UserTokenPolicy | None = None,
    ) -> None:
        self._jwt = HS256(secret)
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}  # token -> (exp, claims)
        self.session_lifetime = session_lifetime
        self.user_policy = user_policy or UserTokenPolicy(timedelta(hours=1), timedelta(days=7))
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
        if claims.version is not None:
            payload["version"] = claims.version
        if claims.size is not None:
            payload["size"] = claims.size
        if claims.session is not None:
            payload["session"] = claims.session
        if claims.by is not None:
            payload["by"] = {"sub": claims.by.sub, "groups": list(claims.by.groups)}
        return self._jwt.encode(payload)

    def issue_archive(self, claims: ArchiveClaims) -> str:
        return self._jwt.encode(
            {
                "operation": "download",
                "volume": claims.volume,
                "virtual_folder_id": claims.vfid,
                "files": list(claims.files),
                "filename": claims.filename,
                "exp": int(time.time() + self.session_lifetime.total_seconds()),
            }
        )

    def verify_archive(self, token: str | None) -> ArchiveClaims:
        """InvalidToken for a token that is not ours; InvalidTokenClaims for one of ours that is
        not an archive token (a ``/download`` token, say)."""
        data = self._decode(token)
        files, filename = data.get("files"), data.get("filename")
        if (
            data.get("operation") != "download"
            or not isinstance(data.get("volume"), str)
            or not isinstance(data.get("virtual_folder_id"), str)
            or not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) for f in files)
            or not (filename is None or isinstance(filename, str))
        ):
            raise InvalidTokenClaims("this token is not an archive download token")
        return ArchiveClaims(data["volume"], data["virtual_folder_id"], tuple(files), filename)

    def issue_user(self, sub: str, groups: list[str] | tuple[str, ...], lifetime: timedelta) -> str:
        payload = {
            "sub": sub,
            "groups": list(groups),
            "exp": int(time.time() + lifetime.total_seconds()),
        }
        return self._jwt.encode(payload)

    def mint_user(
        self,
        user: str,
        groups: Sequence[str],
        expires_in: timedelta | None,
        policy: UserTokenPolicy | None = None,
    ) -> IssuedToken:
        """A user token for the client API, the file API and the web UI (the one minting rule
        behind ``POST /token`` and ``storage-proxy token issue``)."""
        _principal_id(user, "user")
        if len(groups) > MAX_GROUPS:
            raise InvalidParameter(f"at most {MAX_GROUPS} groups")
        unique = list(dict.fromkeys(_principal_id(g, "a group") for g in groups))
        lifetime = (policy or self.user_policy).lifetime(expires_in)
        now = int(time.time())
        exp = now + max(1, int(lifetime.total_seconds()))
        token = self._jwt.encode({"sub": user, "groups": unique, "iat": now, "exp": exp})
        return IssuedToken(token, datetime.fromtimestamp(exp, UTC))

    def _decode(self, token: str | None, remember: bool = True) -> dict[str, Any]:
        if not token:
            raise InvalidToken("a token is required")
        found = self._verified.get(token)
        if found is not None:
            if found[0] > time.time():
                return found[1]
            del self._verified[token]
        try:
            claims = self._jwt.decode(token)
        except TokenExpired:
            raise InvalidToken("the token has expired") from None
        except TokenError as e:
            raise InvalidToken(f"the token is invalid: {e}") from None
        if remember:
            self._remember(token, claims)
        return claims

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        """Keep a verified token until its ``exp`` (a token is immutable: its text is its
        signature, so the same text always verifies the same way until it expires)."""
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return
        if len(self._verified) >= VERIFIED_CACHE_ENTRIES:
            now = time.time()
            self._verified = {k: v for k, v in self._verified.items() if v[0] > now}
            if len(self._verified) >= VERIFIED_CACHE_ENTRIES // 2:
                self._verified.clear()
        self._verified[token] = (float(exp), claims)

    def verify_session(self, token: str | None, op: str, remember: bool = True) -> SessionClaims:
        """The claims of a session token for ``op``; ``remember=False``: the caller keeps what
        it makes of them itself (no second copy kept here)."""
        data = self._decode(token, remember)
        if data.get("op") != op:
            raise InvalidToken(f"this token is not for {op}")
        try:
            return SessionClaims(
                op=op,
                volume=str(data["volume"]),
                vfid=str(data["vfid"]),
                relpath=str(data["relpath"]),
                archive=bool(data.get("archive", False)),
                version=str(data["version"]) if data.get("version") is not None else None,
                size=int(data["size"]) if data.get("size") is not None else None,
                session=str(data["session"]) if data.get("session") else None,
                by=_minter(data.get("by")),
                exp=float(data["exp"]) if data.get("exp") is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidToken("the token lacks required claims") from None

    def verify_user(self, token: str | None) -> UserClaims:
        data = self._decode(token)
        sub = data.get("sub")
        groups = data.get("groups", [])
        if not isinstance(sub, str) or not sub or not isinstance(groups, list):
            raise InvalidToken("a user token needs 'sub' (string) and 'groups' (list)")
        return UserClaims(sub=sub, groups=tuple(str(g) for g in groups))


def _minter(by: Any) -> UserClaims | None:
    """A session token's ``by`` claim: the user it was minted for, or None (the manager)."""
    if by is None:
        return None
    sub, groups = by["sub"], by["groups"]
    if not isinstance(sub, str) or not sub or not isinstance(groups, list):
        raise ValueError("a malformed 'by' claim")
    return UserClaims(sub=sub, groups=tuple(str(g) for g in groups))
