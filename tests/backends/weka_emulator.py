"""A WEKA REST API v2 emulator: the endpoints the weka backend uses, for tests only.

No WEKA cluster is reachable here, so the production client talks to this aiohttp app.  It
follows the WEKA REST API v2 (docs.weka.io, "WEKA REST API"; quota management: directory
quotas, nested up to four levels) as WEKA's CSI driver (``weka/csi-wekafs``) speaks it:

* answers are ``{"data": ...}``, errors ``{"message": ...}``;
* ``POST /api/v2/login`` ``{"username", "password", "org"}`` -> access/refresh tokens (401 for
  wrong credentials); ``POST /api/v2/login/refresh`` ``{"refresh_token"}``; every other call
  needs ``Authorization: Bearer <access_token>`` (401 when unknown or expired);
* ``GET /api/v2/fileSystems``, ``GET /api/v2/fileSystems/<uid>``;
* ``GET /api/v2/fileSystems/<uid>/resolvePath?path=`` -> ``{"inode_id"}`` (404 if absent);
* ``GET /api/v2/fileSystems/<uid>/quota`` (pages of ``page_size``, ``next_token`` beside
  ``data``), ``GET|PUT|DELETE .../quota/<inode_id>`` ("Directory has no quota" for a directory
  without one; a soft limit above the hard one and a fifth nesting level are refused).

The file system's root is ``root``; an inode id is the real directory's inode number, and each
quota's ``total_bytes`` is computed from what is stored below its directory.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from backends.emulators import EmulatorBase, Json, json_body, tree_bytes

API = "/api/v2"
FS = API + "/fileSystems/{uid}"
MAX_NESTING = 4


@dataclass
class WekaEmulator(EmulatorBase):
    user: str = "admin"
    password: str = "w3ka-s3cret-pw"
    org: str = "Root"
    fs_name: str = "default"
    fs_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    capacity: int = 20 << 40
    access: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    quotas: dict[int, Json] = field(default_factory=dict)  # inode id -> quota
    usage_override: dict[str, int] = field(default_factory=dict)  # fs path -> bytes
    page_size: int = 50
    logins: int = 0
    refreshes: int = 0

    def expire_access_tokens(self) -> None:
        self.access.clear()

    # -- protocol ------------------------------------------------------------------------------
    def public(self, request: web.Request) -> bool:
        return request.path in (API + "/login", API + "/login/refresh")

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.access

    def unauthorized(self, request: web.Request) -> web.Response:
        return self.error(401, "Unauthorized: invalid or expired token")

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(API + "/login", self.login)
        router.add_post(API + "/login/refresh", self.login_refresh)
        router.add_get(API + "/fileSystems", self.file_systems)
        router.add_get(FS, self.file_system)
        router.add_get(FS + "/resolvePath", self.resolve_path)
        router.add_get(FS + "/quota", self.list_quotas)
        router.add_get(FS + "/quota/{inode}", self.get_quota)
        router.add_put(FS + "/quota/{inode}", self.put_quota)
        router.add_delete(FS + "/quota/{inode}", self.delete_quota)

    @staticmethod
    def data(value: object, **extra: object) -> web.Response:
        return web.json_response({"data": value, **extra})

    # -- auth ----------------------------------------------------------------------------------
    def _tokens(self) -> web.Response:
        access, refresh = uuid.uuid4().hex, uuid.uuid4().hex
        self.access.add(access)
        self.refresh.add(refresh)
        return self.data(
            {
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": 300,
                "token_type": "Bearer",
            }
        )

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        wanted = (self.user, self.password, self.org)
        if (body.get("username"), body.get("password"), body.get("org")) != wanted:
            return self.error(401, "Invalid username, password or organization")
        self.logins += 1
        return self._tokens()

    async def login_refresh(self, request: web.Request) -> web.Response:
        token = (await json_body(request)).get("refresh_token")
        if token not in self.refresh:
            return self.error(401, "Invalid refresh token")
        self.refresh.discard(str(token))
        self.refreshes += 1
        return self._tokens()

    # -- file system ---------------------------------------------------------------------------
    def _fs(self) -> Json:
        used = tree_bytes(self.root)
        return {
            "uid": self.fs_uid,
            "id": "FSId<0>",
            "name": self.fs_name,
            "group_name": "default",
            "total_budget": self.capacity,
            "used_total": used,
            "free_total": self.capacity - used,
            "available_total": self.capacity - used,
            "is_ready": True,
            "status": "READY",
        }

    def _known_fs(self, request: web.Request) -> web.Response | None:
        if request.match_info["uid"] != self.fs_uid:
            return self.error(404, "Filesystem not found")
        return None

    async def file_systems(self, request: web.Request) -> web.Response:
        return self.data([self._fs()])

    async def file_system(self, request: web.Request) -> web.Response:
        return self._known_fs(request) or self.data(self._fs())

    async def resolve_path(self, request: web.Request) -> web.Response:
        refused = self._known_fs(request)
        if refused:
            return refused
        path = self.root / request.query.get("path", "/").lstrip("/")
        if not path.is_dir():
            return self.error(404, f"Path {request.query.get('path')} not found")
        return self.data({"inode_id": str(path.stat().st_ino), "path": request.query.get("path")})

    # -- quotas --------------------------------------------------------------------------------
    def _directory(self, inode: int) -> Path | None:
        for d, dirs, _ in os.walk(self.root):
            if Path(d).stat().st_ino == inode:
                return Path(d)
            dirs[:] = [x for x in dirs if not x.startswith(".sp-tmp-")]
        return None

    def _record(self, quota: Json) -> Json:
        path = self.root / quota["path"].lstrip("/")
        used = self.usage_override.get(quota["path"], tree_bytes(path))
        return {**quota, "total_bytes": used, "used_bytes": used, "status": "ACTIVE"}

    async def list_quotas(self, request: web.Request) -> web.Response:
        refused = self._known_fs(request)
        if refused:
            return refused
        token = request.query.get("next_token")
        start = int(base64.b64decode(token).decode()) if token else 0
        records = [self._record(q) for q in self.quotas.values()]
        extra = {}
        if start + self.page_size < len(records):
            extra["next_token"] = base64.b64encode(str(start + self.page_size).encode()).decode()
        return self.data(records[start : start + self.page_size], **extra)

    def _quota(self, request: web.Request) -> Json | web.Response:
        refused = self._known_fs(request)
        if refused:
            return refused
        quota = self.quotas.get(int(request.match_info["inode"]))
        return quota if quota is not None else self.error(404, "Directory has no quota")

    async def get_quota(self, request: web.Request) -> web.Response:
        quota = self._quota(request)
        return quota if isinstance(quota, web.Response) else self.data(self._record(quota))

    async def put_quota(self, request: web.Request) -> web.Response:
        refused = self._known_fs(request)
        if refused:
            return refused
        inode = int(request.match_info["inode"])
        directory = self._directory(inode)
        if directory is None:
            return self.error(404, f"Inode {inode} is not a directory of this filesystem")
        body = await json_body(request)
        hard, soft = int(body["hard_limit_bytes"]), int(body.get("soft_limit_bytes") or 0)
        if soft > hard:
            return self.error(400, "Soft limit cannot exceed the hard limit")
        path = "/" + str(directory.relative_to(self.root)).lstrip(".")
        enclosing = [
            q for q in self.quotas.values() if path.startswith(q["path"].rstrip("/") + "/")
        ]
        if inode not in self.quotas and len(enclosing) >= MAX_NESTING:
            return self.error(400, f"Quotas may be nested at most {MAX_NESTING} levels deep")
        self.quotas[inode] = {
            "inode_id": inode,
            "path": path,
            "hard_limit_bytes": hard,
            "soft_limit_bytes": soft,
            "grace_seconds": int(body.get("grace_seconds") or 0),
            "owner": "",
        }
        return self.data(self._record(self.quotas[inode]))

    async def delete_quota(self, request: web.Request) -> web.Response:
        quota = self._quota(request)
        if isinstance(quota, web.Response):
            return quota
        del self.quotas[quota["inode_id"]]
        return self.data({})
