"""What a request handler gets: the view's parts and this request's parsed facts."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .auth import Authenticator, Principal
from .config import DeltaViewConfig, TableLocation
from .errors import S3Error, S3ErrorCode
from .gate import Gate
from .logview import LogFilter
from .metrics import ViewMetrics
from .objects import MetaCache
from .sharing.recipients import Recipients
from .sharing.service import SharingService
from .store import ObjectStore


@dataclass
class View:
    cfg: DeltaViewConfig
    store: ObjectStore  # wrapped read-only when readOnly is on
    gate: Gate
    auth: Authenticator
    metrics: ViewMetrics
    meta: MetaCache
    logs: LogFilter
    sharing: SharingService | None = None
    recipients: Recipients | None = None


VIEW = web.AppKey("deltaview", View)


@dataclass
class Call:
    request: web.Request
    view: View
    principal: Principal
    key: str | None
    request_id: str

    def table(self) -> tuple[str, str, TableLocation]:
        """(alias, table-relative path, location) of the object key; NoSuchKey if none."""
        alias, _, rel = (self.key or "").partition("/")
        loc = self.view.cfg.table_mapping.get(alias)
        if loc is None or not rel or rel.startswith("/"):
            raise S3Error(S3ErrorCode.NO_SUCH_KEY)
        return alias, rel, loc
