"""The conversation a Backend.AI manager (and its clients) has with a storage proxy, as data.

``bench/compat.py`` plays it against storage-proxy 26.9.6 (the reference) and against this daemon
and compares the answers.  Each :class:`Step` is one request; ``save`` keeps its JSON answer
under a name, and a string ``"$name.key"`` in a later body or query is replaced by that saved
value (``"$name"`` alone: the whole answer).  :class:`Put` writes a file straight into the
vfolder (below the path ``GET /folder/mount`` answered), :class:`Pause` lets background tasks
finish.  ``new`` marks the routes added since 23.09 (counted apart in the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"
CLONE = f"{QSID}/aabbccdd000040008000000000000002"
GONE = f"{QSID}/aabbccdd0000400080000000000000ff"
VOL = "vol1"


@dataclass(frozen=True)
class Step:
    name: str
    method: str
    path: str
    body: Any = None
    query: dict[str, str] | None = None
    door: str = "manager"  # manager | client | internal
    auth: str | None = "secret"  # secret | None (no header) | any other string (sent as is)
    save: str | None = None
    new: bool = False
    raw_body: bytes | None = None  # sent as is instead of JSON
    headers: dict[str, str] | None = None
    volatile: frozenset[str] = field(default_factory=frozenset)  # keys compared by type only


@dataclass(frozen=True)
class Put:
    relpath: str
    data: bytes


@dataclass(frozen=True)
class Pause:
    seconds: float


Action = Step | Put | Pause


def vf(**extra: Any) -> dict[str, Any]:
    return {"volume": VOL, "vfid": VFID, **extra}


def _health() -> list[Action]:
    steps: list[Action] = [
        Step("root", "GET", "/", auth=None),
        Step("status", "GET", "/status", auth=None),
    ]
    for door in ("manager", "internal"):
        for path in ("/health", "/livez", "/readyz"):
            steps.append(Step(f"{door}{path}", "GET", path, door=door, auth=None, new=True))
    steps.append(Step("internal unknown route", "GET", "/nope", door="internal", new=True))
    return steps


def _auth_and_volumes() -> list[Action]:
    return [
        Step("volumes no token", "GET", "/volumes", auth=None),
        Step("volumes wrong token", "GET", "/volumes", auth="wrong"),
        Step("volumes", "GET", "/volumes"),
        Step("hwinfo", "GET", "/volume/hwinfo", {"volume": VOL}),
        Step("hwinfo unknown volume", "GET", "/volume/hwinfo", {"volume": "nope"}),
        Step("perf-metric vfs", "GET", "/volume/performance-metric", {"volume": VOL}, new=True),
        Step(
            "perf-metric unknown", "GET", "/volume/performance-metric", {"volume": "no"}, new=True
        ),  # fmt: skip
        Step(
            "perf-metric no token",
            "GET",
            "/volume/performance-metric",
            {"volume": VOL},
            auth=None,
            new=True,
        ),  # fmt: skip
        Step("volume quota get", "GET", "/volume/quota", vf(), new=True),
        Step("volume quota patch", "PATCH", "/volume/quota", vf(size_bytes=1024), new=True),
        Step("volume quota patch no size", "PATCH", "/volume/quota", vf(), new=True),
        Step("volume quota no token", "GET", "/volume/quota", vf(), auth=None, new=True),
    ]


def _quota_and_folders() -> list[Action]:
    return [
        Step("quota-scope create", "POST", "/quota-scope", {"volume": VOL, "qsid": QSID}),
        Step("quota-scope duplicate", "POST", "/quota-scope", {"volume": VOL, "qsid": QSID}),
        Step("quota-scope get", "GET", "/quota-scope", {"volume": VOL, "qsid": QSID}),
        Step("folder create", "POST", "/folder/create", vf()),
        Step("folder create duplicate", "POST", "/folder/create", vf()),
        Step(
            "folder create unknown volume",
            "POST",
            "/folder/create",
            {"volume": "nope", "vfid": CLONE},
        ),  # fmt: skip
        Step("folder create no vfid", "POST", "/folder/create", {"volume": VOL}),
        Step("mount", "GET", "/folder/mount", vf(), save="mount", volatile=frozenset({"path"})),
        Step("mount missing", "GET", "/folder/mount", {"volume": VOL, "vfid": GONE}),
        Step("mount unknown volume", "GET", "/folder/mount", {"volume": "nope", "vfid": VFID}),
        Step("metadata get", "GET", "/folder/metadata", vf(), new=True),
        Step("metadata post", "POST", "/folder/metadata", vf(payload="x"), new=True),
        Step("metadata post no payload", "POST", "/folder/metadata", vf(), new=True),
        Step("metadata no token", "GET", "/folder/metadata", vf(), auth=None, new=True),
    ]


def _files() -> list[Action]:
    mk = "/folder/file/mkdir"
    return [
        Step("mkdir one", "POST", mk, vf(relpath="a/b")),
        Step("mkdir existing", "POST", mk, vf(relpath="a/b")),
        Step("mkdir list", "POST", mk, vf(relpath=["c", "d"])),
        Step("mkdir partial", "POST", mk, vf(relpath=["c", "e"])),
        Step("mkdir exist_ok", "POST", mk, vf(relpath="a/b", exist_ok=True)),
        Step("mkdir no parents", "POST", mk, vf(relpath="x/y", parents=False)),
        Step("mkdir escape", "POST", mk, vf(relpath="../esc")),
        Step("mkdir absolute", "POST", mk, vf(relpath="/abs")),
        Step("mkdir missing vfolder", "POST", mk, {"volume": VOL, "vfid": GONE, "relpath": "q"}),
        Put("a/hello.txt", b"hello, world\n"),
        Put("a/b/deep.bin", bytes(range(256)) * 8),
        Put("top.txt", b"top\n"),
        Step("list root", "POST", "/folder/file/list", vf(relpath="."), volatile=_STAT),
        Step("list a", "POST", "/folder/file/list", vf(relpath="a"), volatile=_STAT),
        Step("list missing", "POST", "/folder/file/list", vf(relpath="nope")),
        Step("list escape", "POST", "/folder/file/list", vf(relpath="../..")),
        Step("rename", "POST", "/folder/file/rename", vf(relpath="top.txt", new_name="top2.txt")),
        Step("rename missing", "POST", "/folder/file/rename", vf(relpath="nope", new_name="z")),
        Step("move", "POST", "/folder/file/move", vf(src_relpath="top2.txt", dst_relpath="c/t")),
        Step("move missing", "POST", "/folder/file/move", vf(src_relpath="no", dst_relpath="d/n")),
        Step("delete missing file", "POST", "/folder/file/delete", vf(relpaths=["nope"])),
        Step("delete dir not recursive", "POST", "/folder/file/delete", vf(relpaths=["d"])),
        Step("list d after it", "POST", "/folder/file/list", vf(relpath="d")),
        Step(
            "delete dir recursive",
            "POST",
            "/folder/file/delete",
            vf(relpaths=["d"], recursive=True),
        ),  # fmt: skip
        Step("delete file", "POST", "/folder/file/delete", vf(relpaths=["c/t"])),
        Step("list c", "POST", "/folder/file/list", vf(relpath="c"), volatile=_STAT),
        Step("usage", "GET", "/folder/usage", vf()),
        Step("usage missing", "GET", "/folder/usage", {"volume": VOL, "vfid": GONE}),
        Step("used-bytes", "GET", "/folder/used-bytes", vf()),
        Step("fs-usage", "GET", "/folder/fs-usage", {"volume": VOL}, volatile=_FS),
        Step("fs-usage unknown", "GET", "/folder/fs-usage", {"volume": "nope"}),
    ]


def _fetch() -> list[Action]:
    fetch = "/folder/file/fetch"
    return [
        Step("fetch file", "POST", fetch, vf(relpath="a/hello.txt"), new=True),
        Step("fetch binary", "POST", fetch, vf(relpath="a/b/deep.bin"), new=True),
        Step("fetch missing", "POST", fetch, vf(relpath="a/nope"), new=True),
        Step("fetch directory", "POST", fetch, vf(relpath="a"), new=True),
        Step("fetch escape", "POST", fetch, vf(relpath="../../x"), new=True),
        Step("fetch absolute", "POST", fetch, vf(relpath="/etc/hostname"), new=True),
        Step("fetch no token", "POST", fetch, vf(relpath="a/hello.txt"), auth=None, new=True),
    ]


def _transfers() -> list[Action]:
    dl = "/folder/file/download"
    return [
        Step(
            "download token", "POST", dl, vf(relpath="a/hello.txt"), save="dl", volatile=_TOKEN
        ),  # fmt: skip
        Step(
            "download token dir",
            "POST",
            dl,
            vf(relpath="a", archive=True),
            save="dldir",
            volatile=_TOKEN,
        ),  # fmt: skip
        Step("download token missing", "POST", dl, vf(relpath="nope"), volatile=_TOKEN),
        Step("download", "GET", "/download", query={"token": "$dl.token"}, door="client"),
        Step("download head", "HEAD", "/download", query={"token": "$dl.token"}, door="client"),
        Step(
            "download range",
            "GET",
            "/download",
            query={"token": "$dl.token"},
            door="client",
            headers={"Range": "bytes=0-4"},
        ),  # fmt: skip
        Step(
            "download dir as zip",
            "GET",
            "/download",
            query={"token": "$dldir.token", "archive": "true"},
            door="client",
        ),  # fmt: skip
        Step("download bad token", "GET", "/download", query={"token": "x.y.z"}, door="client"),
        Step("download no token", "GET", "/download", door="client"),
        Step(
            "upload token",
            "POST",
            "/folder/file/upload",
            vf(relpath="up.bin", size=10),
            volatile=_TOKEN,
        ),  # fmt: skip
    ]


def _archive() -> list[Action]:
    tok = "/folder/file/archive-download-token"
    arch = "/download-archive"

    def av(**extra: Any) -> dict[str, Any]:
        return {"volume": VOL, "virtual_folder_id": VFID, **extra}

    return [
        Step(
            "archive token",
            "POST",
            tok,
            av(files=["a/hello.txt", "a/b"], filename="my.zip"),
            save="arch",
            new=True,
            volatile=_TOKEN,
        ),  # fmt: skip
        Step(
            "archive token default name",
            "POST",
            tok,
            av(files=["a"]),
            save="arch2",
            new=True,
            volatile=_TOKEN,
        ),  # fmt: skip
        Step(
            "archive token missing file",
            "POST",
            tok,
            av(files=["nope"]),
            save="arch3",
            new=True,
            volatile=_TOKEN,
        ),  # fmt: skip
        Step(
            "archive token escape",
            "POST",
            tok,
            av(files=["../../etc"]),
            save="arch4",
            new=True,
            volatile=_TOKEN,
        ),  # fmt: skip
        Step("archive token no files", "POST", tok, av(files=[]), new=True),
        Step(
            "archive token bad filename", "POST", tok, av(files=["a"], filename="x/y.zip"), new=True
        ),  # fmt: skip
        Step("archive token vfid key", "POST", tok, vf(files=["a"]), new=True),
        Step("archive token no body", "POST", tok, raw_body=b"", new=True),
        Step("archive token no token", "POST", tok, av(files=["a"]), auth=None, new=True),
        Step(
            "download-archive", "GET", arch, query={"token": "$arch.token"}, door="client", new=True
        ),  # fmt: skip
        Step(
            "download-archive default name",
            "GET",
            arch,
            query={"token": "$arch2.token"},
            door="client",
            new=True,
        ),  # fmt: skip
        Step(
            "download-archive missing",
            "GET",
            arch,
            query={"token": "$arch3.token"},
            door="client",
            new=True,
        ),  # fmt: skip
        Step(
            "download-archive escape",
            "GET",
            arch,
            query={"token": "$arch4.token"},
            door="client",
            new=True,
        ),  # fmt: skip
        Step(
            "download-archive bad jwt",
            "GET",
            arch,
            query={"token": "garbage"},
            door="client",
            new=True,
        ),  # fmt: skip
        Step(
            "download-archive download token",
            "GET",
            arch,
            query={"token": "$dl.token"},
            door="client",
            new=True,
        ),  # fmt: skip
        Step("download-archive no token", "GET", arch, door="client", new=True),
    ]


def _deletes() -> list[Action]:
    da = "/folder/file/delete-async"
    return [
        Put("gone/x.txt", b"x"),
        Put("gone1.txt", b"1"),
        Step(
            "delete-async file", "POST", da, vf(relpaths=["gone1.txt"]), new=True, volatile=_TASK
        ),  # fmt: skip
        Step(
            "delete-async dir recursive",
            "POST",
            da,
            vf(relpaths=["gone"], recursive=True),
            new=True,
            volatile=_TASK,
        ),  # fmt: skip
        Step(
            "delete-async missing file", "POST", da, vf(relpaths=["nope"]), new=True, volatile=_TASK
        ),  # fmt: skip
        Step(
            "delete-async absolute", "POST", da, vf(relpaths=["/abs"]), new=True, volatile=_TASK
        ),  # fmt: skip
        Step(
            "delete-async unknown volume",
            "POST",
            da,
            {"volume": "nope", "vfid": VFID, "relpaths": ["a"]},
            new=True,
            volatile=_TASK,
        ),  # fmt: skip
        Step(
            "delete-async missing vfolder",
            "POST",
            da,
            {"volume": VOL, "vfid": GONE, "relpaths": ["a"]},
            new=True,
            volatile=_TASK,
        ),  # fmt: skip
        Step("delete-async no relpaths", "POST", da, vf(), new=True),
        Step(
            "delete-async bad vfid",
            "POST",
            da,
            {"volume": VOL, "vfid": "x", "relpaths": ["a"]},
            new=True,
        ),  # fmt: skip
        Step("delete-async no body", "POST", da, raw_body=b"", new=True),
        Step("delete-async no token", "POST", da, vf(relpaths=["a"]), auth=None, new=True),
        Pause(1.5),
        Step(
            "list after delete-async",
            "POST",
            "/folder/file/list",
            vf(relpath="."),
            volatile=_STAT,
            new=True,
        ),  # fmt: skip
        Step(
            "clone",
            "POST",
            "/folder/clone",
            {"src_volume": VOL, "src_vfid": VFID, "dst_volume": VOL, "dst_vfid": CLONE},
            volatile=_TASK,
        ),  # fmt: skip
        Pause(1.5),
        Step(
            "list clone",
            "POST",
            "/folder/file/list",
            {"volume": VOL, "vfid": CLONE, "relpath": "a"},
            volatile=_STAT,
        ),  # fmt: skip
        Step(
            "folder delete",
            "POST",
            "/folder/delete",
            {"volume": VOL, "vfid": CLONE},
            volatile=_TASK,
        ),  # fmt: skip
        Pause(1.5),
        Step("mount deleted", "GET", "/folder/mount", {"volume": VOL, "vfid": CLONE}),
    ]


_STAT = frozenset({"created", "modified", "mtime", "ctime", "atime"})
_FS = frozenset({"capacity_bytes", "used_bytes"})
_TOKEN = frozenset({"token"})
_TASK = frozenset({"bgtask_id"})


def conversation() -> list[Action]:
    return [
        *_health(),
        *_auth_and_volumes(),
        *_quota_and_folders(),
        *_files(),
        *_fetch(),
        *_transfers(),
        *_archive(),
        *_deletes(),
    ]
