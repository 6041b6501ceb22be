"""Delta Sharing recipients: bearer tokens mapped to the view's users, each with its own expiry.

Tokens come from the config (``sharing.recipients``) and, with the database on, from
``deltaview_sharing_recipients(token_sha256, user, expires_at)``; only SHA-256 digests are kept
in memory or looked up, and no token is ever logged. A recipient reads exactly what its user may
read through the S3 view: the same partition rules, enforced on every file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config import DeltaViewConfig
from ..db import Database


@dataclass(frozen=True)
class Recipient:
    user: str
    expires: datetime


class SharingError(Exception):
    """A Delta Sharing error: HTTP status, stable ``errorCode`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Recipients:
    def __init__(
        self,
        cfg: DeltaViewConfig,
        db: Database | None,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._static = {
            digest(r.token): Recipient(r.user, r.expires) for r in cfg.sharing.recipients
        }
        self._db = db
        self._now = wallclock

    async def authenticate(self, authorization: str | None) -> Recipient:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SharingError(401, "UNAUTHENTICATED", "A bearer token is required.")
        key = digest(token.strip())
        found = next((r for d, r in self._static.items() if hmac.compare_digest(d, key)), None)
        if found is None and self._db is not None:
            row = await self._db.sharing_recipient(key)
            if row is not None:
                found = Recipient(row[0], datetime.fromisoformat(row[1]))
        if found is None:
            raise SharingError(401, "UNAUTHENTICATED", "The bearer token is not valid.")
        expires = found.expires if found.expires.tzinfo else found.expires.replace(tzinfo=UTC)
        if self._now() >= expires:
            raise SharingError(401, "UNAUTHENTICATED", "The bearer token has expired.")
        return found
