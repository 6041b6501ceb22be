"""A PowerScale OneFS Platform API emulator: the endpoints the dellemc-onefs backend uses.

No cluster is reachable here, so the production client talks to this aiohttp app.  It follows
the OneFS Platform API reference (Dell's ``isilon_sdk`` 9.x docs: ``QuotaApi``, ``ClusterApi``,
``NamespaceApi``; ``QuotaQuotaCreateParams``, ``QuotaQuotaExtended``, ``QuotaQuotasExtended``):

* HTTP basic auth on every call (401 ``{"errors": [{"code": "AEC_UNAUTHORIZED", ...}]}``);
* ``GET /platform/3/cluster/config``, ``GET /platform/5/quota/license``,
  ``GET /platform/1/cluster/statfs``;
* ``HEAD /namespace/ifs/...``: 200 for a directory that exists, 404 otherwise;
* ``/platform/<v>/quota/quotas``: ``GET`` with ``path``, ``type``, ``recurse_path_children``,
  ``limit`` -> ``{"quotas", "resume", "total"}``, the next page asked with ``resume`` alone
  (anything else beside it is refused); ``POST`` -> ``201 {"id"}`` (the path must exist; one
  quota of a type per path: a second one is a 409 ``AEC_CONFLICT``; a hard threshold above an
  enclosing enforced quota's is refused unless ``ignore_limit_checks``); ``GET``/``PUT``/``DELETE``
  on ``quota/quotas/<id>`` (404 ``AEC_NOT_FOUND`` for an unknown id; ``PUT``/``DELETE`` -> 204).

``/ifs/...`` paths under ``ifs_path`` are directories of ``root`` (the "NFS mount" of the
export), and each quota's ``usage`` is computed from what is really stored below its path.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from backends.emulators import EmulatorBase, Json, json_body, tree_bytes, tree_entries

QUOTAS = "/platform/{v}/quota/quotas"


@dataclass
class OneFSEmulator(EmulatorBase):
    user: str = "root"
    password: str = "a-very-secret-pw"
    ifs_path: str = "/ifs/data/vfroot"
    license_status: str = "Activated"
    capacity: int = 50 << 40
    quotas: dict[str, Json] = field(default_factory=dict)
    usage_override: dict[str, int] = field(default_factory=dict)  # /ifs path -> bytes
    max_page: int = 1000

    # -- protocol ------------------------------------------------------------------------------
    def error(self, status: int, message: str, code: str = "AEC_EXCEPTION") -> web.Response:
        return web.json_response({"errors": [{"code": code, "message": message}]}, status=status)

    def authorized(self, request: web.Request) -> bool:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {token}"

    def unauthorized(self, request: web.Request) -> web.Response:
        return self.error(401, "Authorization required", "AEC_UNAUTHORIZED")

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/platform/3/cluster/config", self.cluster_config)
        router.add_get("/platform/5/quota/license", self.license)
        router.add_get("/platform/1/cluster/statfs", self.statfs)
        router.add_route("HEAD", "/namespace/{path:.*}", self.namespace_head)
        router.add_get(QUOTAS, self.list_quotas)
        router.add_post(QUOTAS, self.create_quota)
        router.add_get(QUOTAS + "/{id}", self.get_quota)
        router.add_put(QUOTAS + "/{id}", self.modify_quota)
        router.add_delete(QUOTAS + "/{id}", self.delete_quota)

    def local(self, ifs_path: str) -> Path | None:
        """The local directory of an /ifs path (None outside the emulated export)."""
        if ifs_path == self.ifs_path:
            return self.root
        if ifs_path.startswith(self.ifs_path + "/"):
            return self.root / ifs_path[len(self.ifs_path) + 1 :]
        return None

    # -- cluster -------------------------------------------------------------------------------
    async def cluster_config(self, request: web.Request) -> web.Response:
        version = {"release": "9.5.0.0", "build": "B_9_5_0_004", "type": "Isilon OneFS"}
        return web.json_response(
            {"name": "emulated-isilon", "local_lnn": 1, "onefs_version": version}
        )

    async def license(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"id": "SmartQuotas", "name": "SmartQuotas", "status": self.license_status}
        )

    async def statfs(self, request: web.Request) -> web.Response:
        used = tree_bytes(self.root)
        bsize = 8192
        blocks = self.capacity // bsize
        free = blocks - -(-used // bsize)
        return web.json_response(
            {"f_bsize": bsize, "f_blocks": blocks, "f_bfree": free, "f_bavail": free}
        )

    async def namespace_head(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        local = self.local(path)
        exists = self.ifs_path.startswith(path + "/") or (local is not None and local.is_dir())
        if not exists:
            return web.Response(status=404)
        return web.Response(status=200, headers={"x-isi-ifs-target-type": "container"})

    # -- quotas --------------------------------------------------------------------------------
    def _record(self, quota: Json) -> Json:
        local = self.local(quota["path"])
        used = self.usage_override.get(quota["path"])
        if used is None:
            used = tree_bytes(local) if local else 0
        usage = {
            "fslogical": used,
            "fslogical_ready": True,
            "applogical": used,
            "applogical_ready": True,
            "physical": used + used // 2,
            "physical_ready": True,
            "inodes": tree_entries(local) if local else 0,
            "inodes_ready": True,
        }
        hard = quota["thresholds"].get("hard")
        thresholds = {
            **quota["thresholds"],
            "hard_exceeded": bool(hard is not None and used > hard),
        }
        return {**quota, "thresholds": thresholds, "usage": usage, "ready": True}

    async def list_quotas(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        resume = query.pop("resume", None)
        if resume is not None:
            if query:
                return self.error(
                    400, "resume cannot be used with other options", "AEC_BAD_REQUEST"
                )
            start, query = self._decode_resume(resume)
        else:
            start = 0
        found = [q for q in self.quotas.values() if self._matches(q, query)]
        limit = min(int(query.get("limit", self.max_page)), self.max_page)
        page = found[start : start + limit]
        body: Json = {"quotas": [self._record(q) for q in page], "total": len(found)}
        body["resume"] = (
            self._encode_resume(start + limit, query) if start + limit < len(found) else None
        )
        return web.json_response(body)

    def _matches(self, quota: Json, query: dict[str, str]) -> bool:
        if "type" in query and quota["type"] != query["type"]:
            return False
        if "path" in query:
            path = query["path"].rstrip("/")
            below = query.get("recurse_path_children") == "true"
            if quota["path"] != path and not (below and quota["path"].startswith(path + "/")):
                return False
        return True

    def _encode_resume(self, start: int, query: dict[str, str]) -> str:
        text = "&".join([str(start), *(f"{k}={v}" for k, v in sorted(query.items()))])
        return base64.b64encode(text.encode()).decode()

    def _decode_resume(self, token: str) -> tuple[int, dict[str, str]]:
        start, *pairs = base64.b64decode(token).decode().split("&")
        return int(start), dict(p.split("=", 1) for p in pairs)

    def _limit_problem(self, path: str, hard: int | None, body: Json) -> str | None:
        """A hard threshold above an enclosing enforced quota's is refused, unless
        ``ignore_limit_checks``."""
        if hard is None or body.get("ignore_limit_checks"):
            return None
        for other in self.quotas.values():
            parent_hard = other["thresholds"].get("hard")
            encloses = path.startswith(other["path"] + "/")
            if encloses and other["enforced"] and parent_hard is not None and hard > parent_hard:
                return f"Threshold {hard} exceeds the parent quota's hard threshold {parent_hard}"
        return None

    async def create_quota(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        path, kind = body.get("path"), body.get("type")
        if not isinstance(path, str) or kind != "directory" or "include_snapshots" not in body:
            return self.error(400, "Input validation failed.", "AEC_BAD_REQUEST")
        local = self.local(path)
        if local is None or not local.is_dir():
            return self.error(404, f"Path {path} does not exist", "AEC_NOT_FOUND")
        if any(q["path"] == path and q["type"] == kind for q in self.quotas.values()):
            return self.error(409, f"Quota already exists for {path}", "AEC_CONFLICT")
        thresholds = dict(body.get("thresholds") or {})
        problem = self._limit_problem(path, thresholds.get("hard"), body)
        if problem:
            return self.error(400, problem, "AEC_BAD_REQUEST")
        quota_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.quotas[quota_id] = {
            "id": quota_id,
            "path": path,
            "type": kind,
            "enforced": bool(body.get("enforced", False)),
            "include_snapshots": bool(body["include_snapshots"]),
            "container": bool(body.get("container", False)),
            "thresholds": {"hard": thresholds.get("hard"), "soft": None, "advisory": None},
            "thresholds_on": body.get("thresholds_on", "fslogicalsize"),
            "linked": False,
            "notifications": "default",
        }
        return web.json_response({"id": quota_id}, status=201)

    def _known(self, request: web.Request) -> Json | web.Response:
        quota = self.quotas.get(request.match_info["id"])
        if quota is None:
            return self.error(404, f"Quota {request.match_info['id']} not found", "AEC_NOT_FOUND")
        return quota

    async def get_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        if isinstance(quota, web.Response):
            return quota
        return web.json_response({"quotas": [self._record(quota)]})

    async def modify_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        if isinstance(quota, web.Response):
            return quota
        body = await json_body(request)
        thresholds = {**quota["thresholds"], **dict(body.get("thresholds") or {})}
        problem = self._limit_problem(quota["path"], thresholds.get("hard"), body)
        if problem:
            return self.error(400, problem, "AEC_BAD_REQUEST")
        quota["thresholds"] = thresholds
        if "enforced" in body:
            quota["enforced"] = bool(body["enforced"])
        return web.Response(status=204)

    async def delete_quota(self, request: web.Request) -> web.Response:
        quota = self._known(request)
        if isinstance(quota, web.Response):
            return quota
        del self.quotas[quota["id"]]
        return web.Response(status=204)
