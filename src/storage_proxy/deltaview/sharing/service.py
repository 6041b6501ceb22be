"""What the Delta Sharing endpoints ask: which tables a recipient sees, a table's snapshot (now,
at a version or at a time), the files of a query and the changes between versions — every file
through the partition gate of the recipient's user, with a URL that expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..auth import Authenticator, Principal
from ..config import DeltaViewConfig, TableLocation
from ..deltalog import FileEntry, LogError, LogReader, Snapshot
from ..errors import S3Error
from ..gate import Gate, TableView
from ..store import ObjectStore
from .recipients import Recipient, SharingError

FILES_PATH = "/delta-sharing/files/"


@dataclass(frozen=True)
class TableRef:
    share: str
    schema: str
    name: str  # the table alias

    def json(self) -> dict[str, str]:
        return {"name": self.name, "schema": self.schema, "share": self.share}


def not_found(what: str) -> SharingError:
    return SharingError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} does not exist or is not shared.")


def bad(message: str) -> SharingError:
    return SharingError(400, "INVALID_PARAMETER_VALUE", message)


class SharingService:
    def __init__(
        self,
        cfg: DeltaViewConfig,
        gate: Gate,
        auth: Authenticator,
        store: ObjectStore,
        client_gone: Callable[[], None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self._gate, self._auth, self._store = gate, auth, store
        self.store = store
        self.client_gone = client_gone
        secret = cfg.sharing.url_secret
        self._secret = secret.encode() if secret else os.urandom(32)

    # -- what a recipient sees ---------------------------------------------------------------

    async def rules_view(self, recipient: Recipient, alias: str) -> TableView:
        try:
            view = await self._gate.view(alias, Principal(recipient.user, None))
        except S3Error as e:
            raise SharingError(500, "INTERNAL_ERROR", "The table's log cannot be read.") from e
        return view

    async def tables(self, recipient: Recipient, share: str | None = None) -> list[TableRef]:
        out = []
        for share_name, schemas in sorted(self.cfg.sharing.shares.items()):
            if share is not None and share_name != share:
                continue
            for schema, aliases in sorted(schemas.items()):
                for alias in aliases:
                    rules = await self._auth.rules(Principal(recipient.user, None), alias)
                    if rules:
                        out.append(TableRef(share_name, schema, alias))
        return out

    async def table(self, recipient: Recipient, share: str, schema: str, name: str) -> TableRef:
        for ref in await self.tables(recipient, share):
            if ref.schema == schema and ref.name == name:
                return ref
        raise not_found(f"Table {share}.{schema}.{name}")

    # -- snapshots ---------------------------------------------------------------------------

    async def snapshot(
        self, alias: str, version: int | None = None, timestamp: str | None = None
    ) -> Snapshot:
        try:
            if timestamp is not None:
                version = await self.version_at(alias, timestamp)
            if version is None:
                return await self._gate.snapshot(alias)
            if version < 0:
                raise bad("version must not be negative")
            reader = LogReader(self._store, self.location(alias))
            reader.known = self._gate.reader(alias).known  # share what time travel learns
            return await reader.load(as_of=version)
        except LogError as e:
            raise bad(f"the table has no version {version}") from e
        except S3Error as e:
            raise SharingError(500, "INTERNAL_ERROR", "The table's log cannot be read.") from e

    async def version_at(self, alias: str, timestamp: str) -> int:
        """The newest version committed at or before ``timestamp`` (commit file times)."""
        try:
            when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise bad("timestamp must be ISO 8601") from None
        commits = await self._gate.reader(alias).commit_times()
        older = [v for v, t in commits if t <= when]
        if not older:
            raise bad("the timestamp is before the table's first version")
        return max(older)

    def location(self, alias: str) -> TableLocation:
        return self.cfg.table_mapping[alias]

    # -- files -------------------------------------------------------------------------------

    def allowed_files(self, snap: Snapshot, view: TableView) -> Iterator[tuple[str, FileEntry]]:
        for rel, entry in snap.files.items():
            if view.allows_values(entry.partition_values):
                yield rel, entry

    async def file_url(self, alias: str, rel: str, base: str) -> tuple[str, int]:
        """A URL for one data file and its expiry (ms since the epoch)."""
        expiry = self.cfg.sharing.url_expiry
        expires_at = int(time.time()) + expiry
        if self.cfg.sharing.file_urls == "proxy":
            return base + FILES_PATH + self.sign_file(alias, rel, expires_at), expires_at * 1000
        loc = self.location(alias)
        url = await self._store.presign_get(loc.bucket, loc.prefix + rel, expiry)
        return url, expires_at * 1000

    def sign_file(self, alias: str, rel: str, expires_at: int) -> str:
        claim = base64.urlsafe_b64encode(json.dumps([alias, rel, expires_at]).encode()).decode()
        mac = hmac.new(self._secret, claim.encode(), hashlib.sha256).hexdigest()
        return f"{claim}.{mac}"

    def open_file(self, token: str) -> tuple[str, str]:
        """(alias, rel) of a proxy file URL; 403 when forged or expired."""
        claim, _, mac = token.partition(".")
        want = hmac.new(self._secret, claim.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, mac):
            raise SharingError(403, "PERMISSION_DENIED", "The file URL is not valid.")
        try:
            alias, rel, expires_at = json.loads(base64.urlsafe_b64decode(claim.encode()))
        except (ValueError, TypeError):
            raise SharingError(403, "PERMISSION_DENIED", "The file URL is not valid.") from None
        if time.time() > expires_at or alias not in self.cfg.table_mapping:
            raise SharingError(403, "PERMISSION_DENIED", "The file URL has expired.")
        return str(alias), str(rel)

    # -- changes -----------------------------------------------------------------------------

    async def commits(self, alias: str, first: int, last: int) -> list[tuple[int, list[Any]]]:
        reader = self._gate.reader(alias)
        try:
            out = []
            for v in range(first, last + 1):
                out.append((v, await reader.read_commit(v)))
            return out
        except (LogError, S3Error) as e:
            raise bad(f"the table's commits {first}..{last} cannot be read") from e
