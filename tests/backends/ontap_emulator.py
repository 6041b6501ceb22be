"""An ONTAP REST emulator: the few endpoints the NetApp backend uses, for tests only.

No filer is reachable here, so tests drive the production client against this aiohttp app.  It
keeps state in memory and mirrors ONTAP's documented shapes: collections as
``{"records", "num_records"}`` filtered by query fields and trimmed by ``fields=``; POST, PATCH and
DELETE on qtrees, quota rules and volumes answer ``202 {"job": {"uuid", "_links"}}`` and take
effect when the job succeeds (queued -> running -> success/failure over a few polls of
``/api/cluster/jobs/{uuid}``); errors are ``{"error": {"message", "code", "target"}}``; basic
auth is checked.  Qtrees are directories under ``nfs_root`` (the "NFS mount" of the volume) and
tree quota reports count the bytes really there.  Volume snapshots are real copies of the tree
(hard to tell from ONTAP's through the mount): ``nfs_root/.snapshot/<name>/``, taken when the
job runs, files copied one by one as they are at that moment (a file renamed over meanwhile is
either the old one or the new one, as a rename is atomic).  Error codes are placeholders in
ONTAP's shape; the client relies on HTTP status and job state, never on code numbers.

Failure switches: :meth:`fail_next_job`, :meth:`hang_next_job`, :meth:`fail_next_requests`.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

Json = dict[str, Any]


@dataclass
class Job:
    uuid: str
    description: str
    apply: Callable[[], str | None]  # returns an error message to fail the job
    polls_to_finish: int
    polls: int = 0
    state: str = "queued"
    message: str = ""
    code: int = 0
    hang: bool = False
    fail: str | None = None


@dataclass
class Emulator:
    nfs_root: Path
    svm: str = "svm1"
    volume: str = "vol1"
    user: str = "admin"
    password: str = "secret"
    size: int = 10 << 30
    polls_per_job: int = 2
    volume_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    quota_on: bool = False
    qtrees: dict[int, Json] = field(default_factory=dict)
    rules: dict[str, Json] = field(default_factory=dict)
    snapshots: dict[str, Json] = field(default_factory=dict)  # uuid -> record
    jobs: dict[str, Job] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    usage_override: dict[str, int] = field(default_factory=dict)  # qtree name -> bytes
    _next_qtree: int = 1
    _fail_jobs: list[tuple[int, str]] = field(default_factory=list)
    _hang_jobs: int = 0
    _fail_requests: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        """ONTAP's ``.snapshot`` is there from the start (snapshot directory access on)."""
        self.snapdir.mkdir(exist_ok=True)

    # -- switches ----------------------------------------------------------------------------
    def fail_next_job(self, message: str = "simulated job failure", *, after: int = 0) -> None:
        """Fail a coming job: the next one, or the one after ``after`` more jobs."""
        self._fail_jobs.append((after, message))

    def hang_next_job(self) -> None:
        self._hang_jobs += 1

    def fail_next_requests(self, count: int = 1, status: int = 500) -> None:
        self._fail_requests.extend([status] * count)

    # -- the app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/api/storage/volumes", self.get_volumes)
        r.add_get("/api/storage/volumes/{uuid}", self.get_volume)
        r.add_patch("/api/storage/volumes/{uuid}", self.patch_volume)
        r.add_get("/api/storage/volumes/{uuid}/snapshots", self.get_snapshots)
        r.add_post("/api/storage/volumes/{uuid}/snapshots", self.post_snapshot)
        r.add_delete("/api/storage/volumes/{uuid}/snapshots/{snap}", self.delete_snapshot)
        r.add_get("/api/storage/qtrees", self.get_qtrees)
        r.add_post("/api/storage/qtrees", self.post_qtree)
        r.add_delete("/api/storage/qtrees/{vol}/{id}", self.delete_qtree)
        r.add_get("/api/storage/quota/rules", self.get_rules)
        r.add_post("/api/storage/quota/rules", self.post_rule)
        r.add_patch("/api/storage/quota/rules/{uuid}", self.patch_rule)
        r.add_delete("/api/storage/quota/rules/{uuid}", self.delete_rule)
        r.add_get("/api/storage/quota/reports", self.get_reports)
        r.add_get("/api/cluster/jobs/{uuid}", self.get_job)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return error(401, "not authorized for that command", "6")
        if self._fail_requests:
            status = self._fail_requests.pop(0)
            return error(status, "simulated internal error", "1")
        return await handler(request)  # type: ignore[no-any-return]

    # -- volumes -----------------------------------------------------------------------------
    def _volume_record(self) -> Json:
        used = _tree_bytes(self.nfs_root)
        return {
            "uuid": self.volume_uuid,
            "name": self.volume,
            "svm": {"name": self.svm},
            "space": {"size": self.size, "used": used, "available": self.size - used},
            "quota": {"state": "on" if self.quota_on else "off"},
        }

    async def get_volumes(self, request: web.Request) -> web.Response:
        return collection(request, [self._volume_record()])

    async def get_volume(self, request: web.Request) -> web.Response:
        if request.match_info["uuid"] != self.volume_uuid:
            return error(404, "entry doesn't exist", "4", "uuid")
        return web.json_response(trim(self._volume_record(), request))

    async def patch_volume(self, request: web.Request) -> web.Response:
        if request.match_info["uuid"] != self.volume_uuid:
            return error(404, "entry doesn't exist", "4", "uuid")
        enabled = (await request.json()).get("quota", {}).get("enabled")

        def apply() -> None:
            if enabled is not None:
                self.quota_on = bool(enabled)

        return self._job("PATCH /api/storage/volumes", apply)

    # -- volume snapshots --------------------------------------------------------------------
    @property
    def snapdir(self) -> Path:
        return self.nfs_root / ".snapshot"

    async def get_snapshots(self, request: web.Request) -> web.Response:
        if request.match_info["uuid"] != self.volume_uuid:
            return error(404, "entry doesn't exist", "4", "volume.uuid")
        return collection(request, list(self.snapshots.values()))

    async def post_snapshot(self, request: web.Request) -> web.Response:
        if request.match_info["uuid"] != self.volume_uuid:
            return error(404, "entry doesn't exist", "4", "volume.uuid")
        body = await request.json()
        name = body.get("name")
        if not isinstance(name, str) or not name or "/" in name or len(name) > 255:
            return error(400, "Invalid snapshot name", "1638477", "name")

        def apply() -> str | None:
            if any(s["name"] == name for s in self.snapshots.values()):
                return f'Snapshot copy "{name}" already exists'
            copy_tree(self.nfs_root, self.snapdir / name, skip={".snapshot"})
            snap_uuid = str(uuid.uuid4())
            self.snapshots[snap_uuid] = {
                "uuid": snap_uuid,
                "name": name,
                "comment": body.get("comment", ""),
                "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
                "volume": {"name": self.volume, "uuid": self.volume_uuid},
                "size": _tree_bytes(self.snapdir / name),
            }
            return None

        return self._job("POST /api/storage/volumes/snapshots", apply)

    async def delete_snapshot(self, request: web.Request) -> web.Response:
        snap_uuid = request.match_info["snap"]
        if request.match_info["uuid"] != self.volume_uuid or snap_uuid not in self.snapshots:
            return error(404, "entry doesn't exist", "4", "uuid")

        def apply() -> None:
            record = self.snapshots.pop(snap_uuid)
            shutil.rmtree(self.snapdir / record["name"], ignore_errors=True)

        return self._job("DELETE /api/storage/volumes/snapshots", apply)

    # -- qtrees ------------------------------------------------------------------------------
    async def get_qtrees(self, request: web.Request) -> web.Response:
        return collection(request, list(self.qtrees.values()))

    async def post_qtree(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("name")
        if not name or body.get("volume", {}).get("name") != self.volume:
            return error(400, "Invalid volume or qtree name", "262179", "name")

        def apply() -> str | None:
            if any(q["name"] == name for q in self.qtrees.values()):
                return f'Qtree "{name}" already exists'
            qid, self._next_qtree = self._next_qtree, self._next_qtree + 1
            mode = int(str(body.get("unix_permissions", 755)), 8)
            (self.nfs_root / name).mkdir(mode=mode)
            self.qtrees[qid] = {
                "id": qid,
                "name": name,
                "path": f"/{self.volume}/{name}",
                "svm": {"name": self.svm},
                "volume": {"name": self.volume, "uuid": self.volume_uuid},
                "security_style": body.get("security_style", "unix"),
            }
            return None

        return self._job("POST /api/storage/qtrees", apply)

    async def delete_qtree(self, request: web.Request) -> web.Response:
        qid = int(request.match_info["id"])
        if request.match_info["vol"] != self.volume_uuid or qid not in self.qtrees:
            return error(404, "entry doesn't exist", "4", "id")

        def apply() -> None:
            qtree = self.qtrees.pop(qid)
            shutil.rmtree(self.nfs_root / qtree["name"], ignore_errors=True)

        return self._job("DELETE /api/storage/qtrees", apply)

    # -- quota rules and reports -------------------------------------------------------------
    async def get_rules(self, request: web.Request) -> web.Response:
        return collection(request, list(self.rules.values()))

    async def post_rule(self, request: web.Request) -> web.Response:
        body = await request.json()
        qtree = body.get("qtree", {}).get("name")
        if body.get("type") != "tree" or not qtree:
            return error(400, "only tree rules with a qtree are emulated", "5308568", "type")
        rule_uuid = str(uuid.uuid4())

        def apply() -> str | None:
            if not any(q["name"] == qtree for q in self.qtrees.values()):
                return f'Qtree "{qtree}" does not exist'
            if any(r["qtree"]["name"] == qtree for r in self.rules.values()):
                return f'Duplicate tree quota rule for qtree "{qtree}"'
            self.rules[rule_uuid] = {
                "uuid": rule_uuid,
                "svm": {"name": self.svm},
                "volume": {"name": self.volume, "uuid": self.volume_uuid},
                "type": "tree",
                "qtree": {"name": qtree},
                "space": dict(body.get("space", {})),
            }
            return None

        return self._job("POST /api/storage/quota/rules", apply)

    async def patch_rule(self, request: web.Request) -> web.Response:
        rule = self.rules.get(request.match_info["uuid"])
        if rule is None:
            return error(404, "entry doesn't exist", "4", "uuid")
        space = (await request.json()).get("space", {})
        return self._job("PATCH /api/storage/quota/rules", lambda: rule["space"].update(space))

    async def delete_rule(self, request: web.Request) -> web.Response:
        rule_uuid = request.match_info["uuid"]
        if rule_uuid not in self.rules:
            return error(404, "entry doesn't exist", "4", "uuid")

        def apply() -> None:
            self.rules.pop(rule_uuid, None)

        return self._job("DELETE /api/storage/quota/rules", apply)

    async def get_reports(self, request: web.Request) -> web.Response:
        records = []
        if self.quota_on:  # ONTAP reports only volumes with quotas on
            ids = {q["name"]: q["id"] for q in self.qtrees.values()}
            for index, rule in enumerate(self.rules.values()):
                name = rule["qtree"]["name"]
                used = self.usage_override.get(name, _tree_bytes(self.nfs_root / name))
                space: Json = {"used": {"total": used}}
                hard = rule["space"].get("hard_limit")
                if hard:
                    space["hard_limit"] = hard
                    space["used"]["hard_limit_percent"] = used * 100 // hard
                records.append(
                    {
                        "index": index,
                        "type": "tree",
                        "svm": {"name": self.svm},
                        "volume": {"name": self.volume, "uuid": self.volume_uuid},
                        "qtree": {"name": name, "id": ids.get(name)},
                        "space": space,
                        "files": {"used": {"total": _tree_files(self.nfs_root / name)}},
                    }
                )
        return collection(request, records)

    # -- jobs --------------------------------------------------------------------------------
    def _job(self, description: str, apply: Callable[[], str | None]) -> web.Response:
        job = Job(str(uuid.uuid4()), description, apply, self.polls_per_job)
        if self._hang_jobs:
            self._hang_jobs -= 1
            job.hang = True
        elif self._fail_jobs:
            after, message = self._fail_jobs.pop(0)
            if after:
                self._fail_jobs.insert(0, (after - 1, message))
            else:
                job.fail = message
        self.jobs[job.uuid] = job
        link = {"self": {"href": f"/api/cluster/jobs/{job.uuid}"}}
        return web.json_response({"job": {"uuid": job.uuid, "_links": link}}, status=202)

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["uuid"])
        if job is None:
            return error(404, "entry doesn't exist", "4", "uuid")
        job.polls += 1
        if job.state in ("queued", "running") and not job.hang:
            if job.polls >= job.polls_to_finish:
                problem = job.fail or job.apply()
                job.state = "failure" if problem else "success"
                job.message, job.code = (problem, 1) if problem else ("success", 0)
            else:
                job.state = "running"
        elif job.hang:
            job.state = "running"
        record = {
            "uuid": job.uuid,
            "description": job.description,
            "state": job.state,
            "message": job.message,
            "code": job.code,
        }
        return web.json_response(trim(record, request))


def error(status: int, message: str, code: str, target: str | None = None) -> web.Response:
    body: Json = {"message": message, "code": code}
    if target:
        body["target"] = target
    return web.json_response({"error": body}, status=status)


def _lookup(record: Json, dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def trim(record: Json, request: web.Request) -> Json:
    """``fields=a,b.c``: keep those top-level fields (plus the identifying ones)."""
    fields = request.query.get("fields")
    if not fields or fields == "*":
        return record
    keep = {f.split(".")[0] for f in fields.split(",")} | {"uuid", "name", "id"}
    return {k: v for k, v in record.items() if k in keep}


def collection(request: web.Request, records: list[Json]) -> web.Response:
    """A collection: filtered by query fields, trimmed by ``fields=``, paged by ``max_records``
    (the rest behind ``_links.next.href``, whose query the client sends back verbatim)."""
    paging = ("fields", "return_records", "max_records", "start.index")
    filters = {k: v for k, v in request.query.items() if k not in paging}
    out = [
        trim(r, request)
        for r in records
        if all(fnmatch.fnmatchcase(str(_lookup(r, k)), v) for k, v in filters.items())
    ]
    start = int(request.query.get("start.index", 0))
    size = int(request.query.get("max_records", len(out) or 1))
    page = out[start : start + size]
    body: Json = {"records": page, "num_records": len(page)}
    links: Json = {"self": {"href": str(request.rel_url)}}
    if start + size < len(out):
        query = {**request.query, "start.index": str(start + size)}
        links["next"] = {"href": str(request.rel_url.with_query(query))}
    body["_links"] = links
    return web.json_response(body)


def copy_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """A copy of a live tree (modes and file times kept, symlinks as symlinks): entries that
    vanish while it is copied are left out, as a staged write renamed into place would be."""
    dst.mkdir(parents=True)
    for dirpath, dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            here, there = Path(dirpath) / name, dst / rel / name
            try:
                if here.is_symlink():
                    os.symlink(os.readlink(here), there)
                elif name in dirs:
                    there.mkdir()
                    shutil.copymode(here, there)
                else:
                    shutil.copy2(here, there)
            except FileNotFoundError:
                continue


def _tree_bytes(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(root) for f in fs)


def _tree_files(root: Path) -> int:
    return sum(len(fs) for _, _, fs in os.walk(root))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(emulator: Emulator) -> tuple[web.AppRunner, str]:
    """Serve the emulator on 127.0.0.1 at a free port; returns the runner and its endpoint."""
    runner = web.AppRunner(emulator.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"
