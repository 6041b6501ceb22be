"""A VAST Management System (VMS) REST emulator: the endpoints the vast backend uses.

No VAST cluster is reachable here, so the production client talks to this aiohttp app.  It
follows the VMS REST API (``/api/<version>/``, Django REST framework conventions) as VAST's own
CSI driver (``vast-data/vast-csi``) and Backend.AI's VAST backend speak it:

* ``POST /api/<v>/token/`` ``{"username", "password"}`` -> ``{"access", "refresh"}`` (401
  ``{"detail": "No active account found with the given credentials"}``);
  ``POST /api/<v>/token/refresh/`` ``{"refresh"}`` -> ``{"access"}``; other calls need
  ``Authorization: Bearer <access>`` or ``Api-Token <token>``: none is a 401, an expired access
  token a 403 ``{"detail": "Token is invalid or expired"}`` (what vast-csi re-logs in on);
* lists are JSON arrays, or with ``page_size`` DRF pages ``{"count", "next", "previous",
  "results"}`` with absolute ``next`` URLs;
* ``/api/<v>/quotas/``: ``GET`` (``path``, ``path__contains``), ``POST`` -> 201 (a path that
  does not exist without ``create_dir`` is a 400 field error; a second quota on a path is
  refused with 503 ``{"detail"}``, as VMS does; names are unique), ``GET|PATCH|DELETE
  quotas/<id>/`` (404 ``{"detail": "Not found."}``);
* ``GET /api/<v>/views/``, ``GET /api/<v>/clusters/``.

Paths under ``vast_path`` are directories of ``root`` (the NFS mount of the view), and each
quota's ``used_capacity`` is computed from what is really stored below its path.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from backends.emulators import EmulatorBase, Json, json_body, tree_bytes, tree_entries

API = "/api/{v}"


@dataclass
class VastEmulator(EmulatorBase):
    user: str = "admin"
    password: str = "v4st-s3cret-pw"
    api_token: str = "vast-api-token-8f1e2d3c"
    vast_path: str = "/vfroot"
    views: list[str] = field(default_factory=lambda: ["/vfroot"])
    capacity: int = 30 << 40
    access: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    quotas: dict[int, Json] = field(default_factory=dict)
    usage_override: dict[str, int] = field(default_factory=dict)  # cluster path -> bytes
    max_page: int = 1000
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def expire_access_tokens(self) -> None:
        self.expired |= self.access
        self.access.clear()

    # -- protocol ------------------------------------------------------------------------------
    def error(self, status: int, message: str) -> web.Response:
        return web.json_response({"detail": message}, status=status)

    def public(self, request: web.Request) -> bool:
        return request.path.endswith(("/token/", "/token/refresh/"))

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header == f"Api-Token {self.api_token}" or (
            header.startswith("Bearer ") and header[7:] in self.access
        )

    def unauthorized(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.expired:
            return self.error(403, "Token is invalid or expired")
        return self.error(401, "Authentication credentials were not provided.")

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(API + "/token/", self.token)
        router.add_post(API + "/token/refresh/", self.token_refresh)
        router.add_get(API + "/quotas/", self.list_quotas)
        router.add_post(API + "/quotas/", self.create_quota)
        router.add_get(API + "/quotas/{id}/", self.get_quota)
        router.add_patch(API + "/quotas/{id}/", self.modify_quota)
        router.add_delete(API + "/quotas/{id}/", self.delete_quota)
        router.add_get(API + "/views/", self.list_views)
        router.add_get(API + "/clusters/", self.list_clusters)

    def local(self, path: str) -> Path | None:
        if path == self.vast_path:
            return self.root
        if path.startswith(self.vast_path + "/"):
            return self.root / path[len(self.vast_path) + 1 :]
        return None

    # -- auth ----------------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if (body.get("username"), body.get("password")) != (self.user, self.password):
            return self.error(401, "No active account found with the given credentials")
        access, refresh = uuid.uuid4().hex, uuid.uuid4().hex
        self.access.add(access)
        self.refresh.add(refresh)
        return web.json_response({"access": access, "refresh": refresh})

    async def token_refresh(self, request: web.Request) -> web.Response:
        if (await json_body(request)).get("refresh") not in self.refresh:
            return web.json_response(
                {"detail": "Token is invalid or expired", "code": "token_not_valid"}, status=401
            )
        access = uuid.uuid4().hex
        self.access.add(access)
        return web.json_response({"access": access})

    # -- lists ---------------------------------------------------------------------------------
    def _listing(self, request: web.Request, items: list[Json]) -> web.Response:
        if "page_size" not in request.query:
            return web.json_response(items)
        size = min(int(request.query["page_size"]), self.max_page)
        page = int(request.query.get("page", 1))
        start = (page - 1) * size
        body: Json = {"count": len(items), "next": None, "previous": None}
        body["results"] = items[start : start + size]
        url = request.url
        if start + size < len(items):
            body["next"] = str(url.update_query(page=page + 1))
        if page > 1:
            body["previous"] = str(url.update_query(page=page - 1))
        return web.json_response(body)

    async def list_views(self, request: web.Request) -> web.Response:
        views = [{"id": i, "path": p, "protocols": ["NFS"]} for i, p in enumerate(self.views, 1)]
        return self._listing(request, views)

    async def list_clusters(self, request: web.Request) -> web.Response:
        used = tree_bytes(self.root)
        cluster = {
            "id": 1,
            "name": "emulated-vast",
            "state": "ONLINE",
            "usable_capacity_bytes": self.capacity,
            "physical_space_in_use": used,
            "logical_space_in_use": used,
        }
        return self._listing(request, [cluster])

    # -- quotas --------------------------------------------------------------------------------
    def _record(self, quota: Json) -> Json:
        local = self.local(quota["path"])
        used = self.usage_override.get(quota["path"])
        if used is None:
            used = tree_bytes(local) if local else 0
        hard = quota["hard_limit"]
        return {
            **quota,
            "used_capacity": used,
            "used_effective_capacity": used,
            "used_inodes": tree_entries(local) if local else 0,
            "percent_capacity": used * 100 // hard if hard else 0,
            "state": "EXCEEDED" if hard and used > hard else "OK",
        }

    async def list_quotas(self, request: web.Request) -> web.Response:
        found = list(self.quotas.values())
        if "path" in request.query:
            found = [q for q in found if q["path"] == request.query["path"]]
        if "path__contains" in request.query:
            found = [q for q in found if request.query["path__contains"] in q["path"]]
        return self._listing(request, [self._record(q) for q in found])

    async def create_quota(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name, path = body.get("name"), body.get("path")
        if not isinstance(name, str) or not isinstance(path, str):
            return web.json_response({"name": ["This field is required."]}, status=400)
        if any(q["name"] == name for q in self.quotas.values()):
            return web.json_response({"name": ["quota with this name already exists."]}, status=400)
        local = self.local(path)
        if local is None or not local.is_dir():
            if not body.get("create_dir") or local is None:
                return web.json_response({"path": [f"Path {path} does not exist"]}, status=400)
            local.mkdir(parents=True)
        if any(q["path"] == path for q in self.quotas.values()):
            return self.error(503, f"Quota on path {path} already exists")
        quota_id = next(self._ids)
        self.quotas[quota_id] = {
            "id": quota_id,
            "guid": str(uuid.uuid4()),
            "name": name,
            "path": path,
            "hard_limit": body.get("hard_limit"),
            "soft_limit": body.get("soft_limit"),
            "hard_limit_inodes": None,
            "soft_limit_inodes": None,
            "grace_period": None,
        }
        return web.json_response(self._record(self.quotas[quota_id]), status=201)

    def _known(self, request: web.Request) -> Json | web.Response:
        try:
            quota = self.quotas.get(int(request.match_info["id"]))
        except ValueError:
            quota = None
        return quota if quota is not None else self.error(404, "Not found.")

    async def get_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        return quota if isinstance(quota, web.Response) else web.json_response(self._record(quota))

    async def modify_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        if isinstance(quota, web.Response):
            return quota
        body = await json_body(request)
        for key in ("hard_limit", "soft_limit", "grace_period"):
            if key in body:
                quota[key] = body[key]
        return web.json_response(self._record(quota))

    async def delete_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        if isinstance(quota, web.Response):
            return quota
        del self.quotas[quota["id"]]
        return web.Response(status=204)
