"""A FlashBlade REST 2.x emulator: the endpoints the purestorage backend uses, for tests only.

No array is reachable here, so the production client talks to this aiohttp app.  It follows the
FlashBlade REST API 2.x reference (OpenAPI "FlashBlade REST API" 2.26, as published in Pure's
``purity_fb``/``py-pure-client`` documentation):

* ``GET /api/api_version`` (no auth) -> ``{"versions": [...]}``;
* ``POST /api/login`` with the ``api-token`` header -> 200 and the session in the
  ``x-auth-token`` response header (a wrong token: 401); every other call needs that header;
* ``/api/<version>/file-systems``: ``GET`` with ``names``, ``filter=name='glob'``, ``destroyed``,
  ``limit`` + ``continuation_token`` (the next token in the body and in ``x-next-token``) ->
  ``{"items", "continuation_token", "total_item_count"}``; ``POST ?names=`` creates,
  ``PATCH ?names=`` modifies (``provisioned`` "" is unlimited; a hard limit under the usage is
  refused unless ``ignore_usage=true``; a destroyed file system can only be recovered),
  ``DELETE ?names=`` eradicates a destroyed one;
* ``GET /api/<version>/arrays/space`` -> ``{"items": [{"capacity", "space": {...}}]}``;
* errors: ``{"errors": [{"context", "message"}]}`` (400 for a name that does not exist).

A file system is a real directory (``mount_of(name)``: where the NFS automounter would show it)
and ``space.virtual`` counts the bytes really stored there.
"""

from __future__ import annotations

import base64
import fnmatch
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from backends.emulators import EmulatorBase, Json, json_body, tree_bytes

VERSIONS = ["1.12", "2.0", "2.4", "2.8", "2.12"]


@dataclass
class FlashBladeEmulator(EmulatorBase):
    api_token: str = "T-0f2e2884-9486-c6c2-438c-f50418f2aac3"
    versions: list[str] = field(default_factory=lambda: list(VERSIONS))
    capacity: int = 100 << 40
    #: Where a file system's files are (the test's automounter): default ``root / name``.
    mount_of: Callable[[str], Path] | None = None
    file_systems: dict[str, Json] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    usage_override: dict[str, int] = field(default_factory=dict)  # fs name -> bytes
    max_page: int = 1000  # the array's own page limit

    def directory(self, name: str) -> Path:
        return self.mount_of(name) if self.mount_of else self.root / name

    def expire_sessions(self) -> None:
        self.sessions.clear()

    # -- protocol ------------------------------------------------------------------------------
    def error(self, status: int, message: str, context: str | None = None) -> web.Response:
        return web.json_response(
            {"errors": [{"context": context, "message": message}]}, status=status
        )

    def public(self, request: web.Request) -> bool:
        return request.path in ("/api/api_version", "/api/login")

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("x-auth-token") in self.sessions

    def unauthorized(self, request: web.Request) -> web.Response:
        return self.error(401, "Invalid or expired session token.")

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/api_version", self.api_version)
        router.add_post("/api/login", self.login)
        router.add_post("/api/logout", self.logout)
        router.add_get("/api/{v}/file-systems", self.get_file_systems)
        router.add_post("/api/{v}/file-systems", self.post_file_system)
        router.add_patch("/api/{v}/file-systems", self.patch_file_system)
        router.add_delete("/api/{v}/file-systems", self.delete_file_system)
        router.add_get("/api/{v}/arrays/space", self.arrays_space)

    # -- auth ----------------------------------------------------------------------------------
    async def api_version(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": self.versions})

    async def login(self, request: web.Request) -> web.Response:
        if request.headers.get("api-token") != self.api_token:
            return self.error(401, "Invalid API token.")
        token = str(uuid.uuid4())
        self.sessions.add(token)
        return web.json_response({"username": "pureuser"}, headers={"x-auth-token": token})

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.discard(request.headers.get("x-auth-token", ""))
        return web.json_response({})

    # -- file systems --------------------------------------------------------------------------
    def _version_ok(self, request: web.Request) -> bool:
        return request.match_info["v"] in self.versions and request.match_info["v"] >= "2"

    def _record(self, fs: Json) -> Json:
        used = self.usage_override.get(fs["name"], tree_bytes(self.directory(fs["name"])))
        provisioned = fs["provisioned"]
        space: Json = {"virtual": used, "unique": used, "total_physical": used, "snapshots": 0}
        if fs["hard_limit_enabled"] and provisioned:
            space["total_provisioned"] = provisioned
            space["available_provisioned"] = max(0, provisioned - used)
        return {**fs, "space": space}

    def _names(self, request: web.Request) -> list[str] | web.Response:
        names = [n for n in request.query.get("names", "").split(",") if n]
        if not names:
            return self.error(400, "Missing names.", "names")
        for name in names:
            if name not in self.file_systems and request.method != "POST":
                return self.error(400, "File system does not exist.", name)
        return names

    async def get_file_systems(self, request: web.Request) -> web.Response:
        if not self._version_ok(request):
            return self.error(404, "Unsupported API version.")
        found = list(self.file_systems.values())
        if "names" in request.query:
            names = self._names(request)
            if isinstance(names, web.Response):
                return names
            found = [self.file_systems[n] for n in names]
        flt = request.query.get("filter")
        if flt is not None:
            if not (flt.startswith("name='") and flt.endswith("'")):
                return self.error(400, f"Invalid filter: {flt}", "filter")
            found = [fs for fs in found if fnmatch.fnmatchcase(fs["name"], flt[6:-1])]
        if "destroyed" in request.query:
            wanted = request.query["destroyed"] == "true"
            found = [fs for fs in found if fs["destroyed"] == wanted]
        return self._page(request, [self._record(fs) for fs in found])

    def _page(self, request: web.Request, items: list[Json]) -> web.Response:
        token = request.query.get("continuation_token")
        start = int(base64.b64decode(token).decode()) if token else 0
        limit = min(int(request.query.get("limit", self.max_page)), self.max_page)
        page = items[start : start + limit]
        body: Json = {"items": page, "total_item_count": len(items)}
        headers = {}
        if start + limit < len(items):
            nxt = base64.b64encode(str(start + limit).encode()).decode()
            body["continuation_token"] = nxt
            headers["x-next-token"] = nxt
        return web.json_response(body, headers=headers)

    async def post_file_system(self, request: web.Request) -> web.Response:
        names = self._names(request)
        if isinstance(names, web.Response):
            return names
        body = await json_body(request)
        created = []
        for name in names:
            if name in self.file_systems:
                return self.error(400, "File system already exists.", name)
            hard = bool(body.get("hard_limit_enabled", False))
            fs: Json = {
                "name": name,
                "id": str(uuid.uuid4()),
                "created": int(time.time() * 1000),
                "provisioned": body.get("provisioned") or None,
                "hard_limit_enabled": hard,
                "destroyed": False,
                "time_remaining": None,
                "nfs": dict(body.get("nfs") or {}),
            }
            self.directory(name).mkdir(parents=True, exist_ok=True)
            self.file_systems[name] = fs
            created.append(self._record(fs))
        return web.json_response({"items": created})

    async def patch_file_system(self, request: web.Request) -> web.Response:
        names = self._names(request)
        if isinstance(names, web.Response):
            return names
        body = await json_body(request)
        ignore_usage = request.query.get("ignore_usage") == "true"
        for name in names:
            refused = self._refusal(self.file_systems[name], body, ignore_usage)
            if refused:
                return self.error(400, refused, name)
        for name in names:
            self._apply(self.file_systems[name], body)
        return web.json_response({"items": [self._record(self.file_systems[n]) for n in names]})

    def _refusal(self, fs: Json, body: Json, ignore_usage: bool) -> str | None:
        if fs["destroyed"] and body.get("destroyed") is not False:
            return "Cannot modify a destroyed file system."
        provisioned = body.get("provisioned", fs["provisioned"]) or None
        hard = body.get("hard_limit_enabled", fs["hard_limit_enabled"])
        used = self._record(fs)["space"]["virtual"]
        if hard and provisioned is not None and provisioned < used and not ignore_usage:
            return "Provisioned size is less than the current usage; use ignore_usage."
        return None

    def _apply(self, fs: Json, body: Json) -> None:
        if "provisioned" in body:
            fs["provisioned"] = body["provisioned"] or None
        if "hard_limit_enabled" in body:
            fs["hard_limit_enabled"] = bool(body["hard_limit_enabled"])
        if "destroyed" in body:
            fs["destroyed"] = bool(body["destroyed"])
            fs["time_remaining"] = 86_400_000 if fs["destroyed"] else None

    async def delete_file_system(self, request: web.Request) -> web.Response:
        names = self._names(request)
        if isinstance(names, web.Response):
            return names
        for name in names:
            if not self.file_systems[name]["destroyed"]:
                return self.error(400, "File system must be destroyed before eradication.", name)
        for name in names:
            del self.file_systems[name]
            shutil.rmtree(self.directory(name), ignore_errors=True)
        return web.json_response({})

    async def arrays_space(self, request: web.Request) -> web.Response:
        used = sum(self._record(fs)["space"]["virtual"] for fs in self.file_systems.values())
        item: Any = {
            "name": "fb1",
            "capacity": self.capacity,
            "space": {"total_physical": used, "virtual": used, "unique": used},
            "time": int(time.time() * 1000),
        }
        return web.json_response({"items": [item], "total_item_count": 1})
