"""Wire compatibility with Backend.AI's storage-proxy 26.9.6: one conversation, two daemons.

Plays the conversation of ``compat_conversation.py`` (what a Backend.AI manager and its clients
send, old routes and the routes added since 23.09) against the reference — storage-proxy 26.9.6,
started with the shared bench-peer scripts (``setup_peer26.sh``, ``run_peer26.sh``,
``stop_peer26.sh``) — and against this daemon (``[api.manager] compat = "26.09"``, the default),
one after the other, each on a fresh volume.  Every request gives three observations: the status,
the media type, and the body.  A body agrees when every key of the reference's JSON is in ours
with the same value (ours may add keys, such as ``code``; keys a step names volatile — tokens,
task ids, times, mount paths — are compared by type), when a text body is the same text, when a
zip holds the same entries with the same bytes, and when other bytes are equal.

Where the reference is plainly wrong (a 500 or a 200 for a user error, 405 for ``HEAD
/download``, a 202 for a delete that cannot succeed) this daemon answers correctly on purpose:
``DEPARTURES`` (``DEPARTURES_23`` for 23.9.10) lists each, with the reason; the verdict counts
them apart.

    python bench/compat.py                 # prints "agree on N of M observations" and the rest
    python bench/compat.py --json out.json --strict   # exit 1 unless only departures disagree
    python bench/compat.py --against 23.9.10          # the 23.09 dialect against 23.9.10

Needs the bench-peer scripts in ``<repo>/../shared/bench-peer`` (``--shared``) and runs the peer
in ``bench/.peer26`` (``bench/.peer`` for 23.9.10); run it under ``flock /tmp/peer-bench.lock``
so two reference peers never collide.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from compat_conversation import Action, Pause, Put, Step, conversation
from daemon_proc import free_ports, stop_daemon

SECRET_HEADER = "X-BackendAI-Storage-Auth-Token"
KINDS = ("status", "type", "body")
STARTUP_TIMEOUT = 60.0
HERE = Path(__file__).resolve().parent

#: (step, observation) where this daemon answers otherwise on purpose, and why.
DEPARTURES: dict[tuple[str, str], str] = {
    (step, kind): reason
    for steps, kinds, reason in (
        (("fetch missing",), KINDS, "26.9.6 answers 200 with an empty body (its handler "
         "swallows the error); a missing file is a 404"),
        (("fetch directory",), KINDS, "26.9.6 answers 200 with an empty body; a directory is a "
         "400"),
        (("fetch escape",), KINDS, "26.9.6 answers 200 with an empty body for a path out of "
         "the vfolder; it is a 400"),
        (("download head",), KINDS, "26.9.6 answers 405 to HEAD /download; HEAD is answered as "
         "GET without the body"),
        (("mkdir absolute",), KINDS, "26.9.6 answers 500 (its error middleware cannot encode "
         "the failure); a malformed path is one failed item (422)"),
        (("download token missing",), KINDS, "26.9.6 signs a download token for a file that is "
         "not there (its client then gets the 404); the file is looked up when the token is "
         "asked for, so the manager learns of it at once"),
        (("list d after it",), ("status", "body"), "26.9.6 answers 200 to a delete of a "
         "directory without recursive and leaves the directory there; an empty directory is "
         "removed (rmdir), one with something in it is refused (400 ENOTEMPTY)"),
        (("folder create duplicate",), KINDS, "26.9.6 answers 500 text/plain to a vfolder "
         "that already exists; it is a 409"),
        (("delete-async absolute", "delete-async unknown volume", "delete-async missing vfolder"),
         KINDS, "26.9.6 accepts (202) a delete that cannot succeed and fails it later; it is "
         "refused at once (400 or 404)"),
        (("volumes",), ("body",), "capabilities: this daemon's vfs volumes enforce quota scopes "
         "and say so (quota), and name their local paths (local-path); 26.9.6's vfs says "
         "vfolder alone"),
        (("quota-scope get",), ("body",), "used_bytes: 26.9.6's vfs cannot tell a quota scope's "
         "usage (null); this daemon counts it"),
        (("used-bytes",), ("body",), "26.9.6 answers `du -hs` (disk blocks, rounded to a unit: "
         "28K); this daemon counts the bytes exactly"),
        (("perf-metric vfs",), KINDS, "26.9.6's vfs reports no I/O figures (400 "
         "unsupported-operation); this daemon reads those of the block device below a local "
         "volume (200 {\"metric\", \"observed_at\"}, the shape 26.9.6's other backends "
         "answer)"),
        (("list after delete-async",), ("body",), "26.9.6 stages uploads inside the vfolder "
         "(.upload appears in its listing once an upload token is issued); this daemon stages "
         "them outside every tenant path"),
    )
    for step in steps
    for kind in kinds
}  # fmt: skip


#: The same for 23.9.10 and the 23.09 dialect.  Most are 500s 23.9.10 answers to a user error
#: (its handlers let the failure through): ours is the daemon's own problem, the status right.
_FIVE_HUNDRED = "23.9.10 answers 500 text/plain (the error escapes its handler)"
DEPARTURES_23: dict[tuple[str, str], str] = {
    (step, kind): reason
    for steps, kinds, reason in (
        (("hwinfo unknown volume", "folder create unknown volume", "mount unknown volume",
          "fs-usage unknown", "perf-metric unknown"),
         KINDS, f"{_FIVE_HUNDRED} to an unknown volume; it is a 404"),
        (("mkdir missing vfolder", "usage missing"), KINDS, f"{_FIVE_HUNDRED} to a vfolder "
         "that does not exist; it is a 404"),
        (("quota-scope duplicate",), KINDS, f"{_FIVE_HUNDRED} to a quota scope that exists; "
         "it is a 409"),
        (("folder create duplicate",), KINDS, f"{_FIVE_HUNDRED} to a vfolder that exists; it "
         "is a 409"),
        (("mkdir list", "mkdir partial"), KINDS, f"{_FIVE_HUNDRED} to a list of paths (26.09's "
         "mkdir); one path is what 23.09 takes, so the list is refused as a parameter (400 "
         "invalid-api-params)"),
        (("mkdir escape", "list escape"), KINDS, f"{_FIVE_HUNDRED} to a path with '..' out of "
         "the vfolder; it is a 400 invalid-api-params, as it answers an absolute one"),
        (("download head",), KINDS, "23.9.10 answers 405 to HEAD /download; HEAD is answered "
         "as GET without the body"),
        (("download token missing",), KINDS, "23.9.10 signs a download token for a file that "
         "is not there (its client then gets the 404); the file is looked up when the token is "
         "asked for, so the manager learns of it at once"),
        (("fetch missing", "fetch directory", "fetch escape"), KINDS, "23.9.10 answers 200 "
         "with an empty body (its handler swallows the error); a missing file is a 404, a "
         "directory or a path out of the vfolder a 400"),
        (("perf-metric vfs",), KINDS, "23.9.10's vfs reports no I/O figures (400 "
         "unsupported-operation); this daemon reads those of the block device below a local "
         "volume"),
        (("volumes",), ("body",), DEPARTURES[("volumes", "body")]),
        (("quota-scope get",), ("body",), "used_bytes: 23.9.10's vfs cannot tell a quota "
         "scope's usage (null); this daemon counts it"),
        (("used-bytes",), ("body",), "23.9.10 answers `du` (disk blocks); this daemon counts "
         "the bytes exactly"),
    )
    for step in steps
    for kind in kinds
}  # fmt: skip


@dataclass
class Answer:
    status: int
    media: str
    body: Any  # JSON, str or bytes

    def brief(self) -> str:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body, default=repr)
        return f"{self.status} {self.media} {text[:600]}"


# -- the two daemons --------------------------------------------------------------------------


@dataclass
class Doors:
    manager: str
    client: str
    internal: str
    secret: str


class Ours:
    name = "ours"

    def __init__(self, scratch: Path, compat: str = "26.09") -> None:
        self.scratch = scratch
        client, manager, internal = free_ports(3)
        self.doors = Doors(
            f"http://127.0.0.1:{manager}",
            f"http://127.0.0.1:{client}",
            f"http://127.0.0.1:{internal}",
            "compat-manager-secret",
        )
        q = json.dumps
        self.config = scratch / "storage-proxy.toml"
        self.config.write_text(
            "\n".join(
                [
                    "[storage-proxy]",
                    f"data-dir = {q(str(scratch / 'data'))}",
                    f'secret = "{"compat-token-secret-0123456789abcdef"}"',
                    "[api.client]",
                    f'service-addr = {{ host = "127.0.0.1", port = {client} }}',
                    "[api.manager]",
                    f'service-addr = {{ host = "127.0.0.1", port = {manager} }}',
                    f'internal-addr = {{ host = "127.0.0.1", port = {internal} }}',
                    f'secret = "{self.doors.secret}"',
                    f"compat = {q(compat)}",
                    "[volume.vol1]",
                    'backend = "vfs"',
                    f"path = {q(str(scratch / 'vol1'))}",
                    "[logging]",
                    'level = "WARNING"',
                    "",
                ]
            )
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[Doors]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
        with open(self.scratch / "daemon.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "storage_proxy.cli", "start-server"]
                + ["--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.scratch,
                env=env,
                start_new_session=True,
            )
        try:
            _wait(self.doors, lambda: proc.poll() is None)
            yield self.doors
        finally:
            stop_daemon(proc)


@dataclass(frozen=True)
class Release:
    """A reference release: its bench-peer scripts, where its ports come from, our dialect."""

    name: str
    scripts: tuple[str, str, str]  # setup, run, stop
    dialect: str
    peer_dir: str  # below bench/
    departures: dict[tuple[str, str], str]
    fixed: Doors | None = None  # None: read from PEER_DIR/ports.env


RELEASES = {
    "26.9.6": Release(
        "26.9.6",
        ("setup_peer26.sh", "run_peer26.sh", "stop_peer26.sh"),
        "26.09",
        ".peer26",
        DEPARTURES,
    ),
    "23.9.10": Release(
        "23.9.10",
        ("setup_peer.sh", "run_peer.sh", "stop_peer.sh"),
        "23.09",
        ".peer",
        DEPARTURES_23,
        Doors(
            "http://127.0.0.1:16022",
            "http://127.0.0.1:16021",
            "http://127.0.0.1:16022",  # 23.9.10 has no internal listener
            "baipeer-manager-secret",
        ),
    ),
}


class Reference:
    name = "reference"

    def __init__(self, scripts: Path, peer_dir: Path, release: Release = RELEASES["26.9.6"]):
        self.scripts, self.peer_dir, self.release = scripts, peer_dir, release

    def _run(self, script: str, timeout: float, **env: str) -> str:
        done = subprocess.run(
            ["bash", str(self.scripts / script)],
            env={**os.environ, "PEER_DIR": str(self.peer_dir), **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    @contextlib.contextmanager
    def running(self) -> Iterator[Doors]:
        setup, run, stop = self.release.scripts
        self.peer_dir.mkdir(parents=True, exist_ok=True)
        self._run(setup, 900)
        try:
            self._run(run, 120, WIPE_VOLUME="1", NUM_PROC="1")
            yield self.release.fixed or self._ports()
        finally:
            self._run(stop, 60)

    def _ports(self) -> Doors:
        ports = dict(
            line.split("=", 1)
            for line in (self.peer_dir / "ports.env").read_text().splitlines()
            if "=" in line
        )
        url = "http://127.0.0.1:{}".format
        return Doors(
            url(ports["MANAGER_PORT"]),
            url(ports["CLIENT_PORT"]),
            url(ports["INTERNAL_PORT"]),
            ports["MANAGER_SECRET"],
        )


def _wait(doors: Doors, alive: Any) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the daemon exited at start-up")
        with contextlib.suppress(requests.RequestException):
            if requests.get(doors.manager + "/status", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("the daemon did not answer /status in time")


# -- playing ----------------------------------------------------------------------------------


def _resolve(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        name, _, key = value[1:].partition(".")
        found = saved.get(name)
        return found.get(key) if key and isinstance(found, dict) else found
    if isinstance(value, dict):
        return {k: _resolve(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, saved) for v in value]
    return value


def _answer(resp: requests.Response) -> Answer:
    media = resp.headers.get("Content-Type", "").split(";")[0].strip()
    body: Any = resp.content
    if media.endswith("json"):
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
    elif media.startswith("text/"):
        body = resp.text.strip()
    return Answer(resp.status_code, media, body)


def play(doors: Doors, actions: list[Action]) -> dict[str, Answer]:
    """Each step's answer, by name."""
    saved: dict[str, Any] = {}
    found: dict[str, Answer] = {}
    with requests.Session() as http:
        for action in actions:
            if isinstance(action, Pause):
                time.sleep(action.seconds)
                continue
            if isinstance(action, Put):
                target = Path(saved["mount"]["path"], action.relpath)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(action.data)
                continue
            found[action.name] = answer = _send(http, doors, action, saved)
            if action.save:
                saved[action.save] = answer.body
    return found


def _send(http: requests.Session, doors: Doors, step: Step, saved: dict[str, Any]) -> Answer:
    base = {"manager": doors.manager, "client": doors.client, "internal": doors.internal}
    headers = dict(step.headers or {})
    if step.door == "manager" and step.auth is not None:
        headers[SECRET_HEADER] = doors.secret if step.auth == "secret" else step.auth
    kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
    if step.raw_body is not None:
        kwargs["data"] = step.raw_body
    elif step.body is not None:
        kwargs["json"] = _resolve(step.body, saved)
    if step.query is not None:
        kwargs["params"] = _resolve(step.query, saved)
    try:
        resp = http.request(step.method, base[step.door] + step.path, **kwargs)
    except requests.RequestException as e:
        return Answer(0, "", f"no answer: {type(e).__name__}")
    return _answer(resp)


# -- comparing --------------------------------------------------------------------------------


def _zip_entries(data: bytes) -> tuple[list[tuple[str, bytes]], set[str]]:
    """A zip's files (name, bytes) and its directory entries."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = sorted((i.filename, z.read(i)) for i in z.infolist() if not i.is_dir())
        return files, {i.filename for i in z.infolist() if i.is_dir()}


def _zips_agree(ref: bytes, ours: bytes) -> bool:
    """The same files with the same bytes; ours may hold directory entries the reference
    leaves out (an empty directory is kept)."""
    (ref_files, ref_dirs), (our_files, our_dirs) = _zip_entries(ref), _zip_entries(ours)
    return ref_files == our_files and ref_dirs <= our_dirs


#: Keys whose values differ between any two daemons (times, versions, where the volume lives):
#: compared by shape.  Free text (``msg``, ``data``, ``error_message``) is compared by shape too:
#: its keys and types are the contract, its words are not.
VOLATILE = frozenset(
    {"storage-proxy", "version", "path", "timestamp", "last_checked_at", "created", "modified"}
)
TEXT = frozenset({"msg", "data", "error_message"})
#: The dependencies differ (etcd and Redis there, the metadata store and volumes here): each of
#: our checks must have the shape of the reference's first.
SHAPE_LISTS = frozenset({"connectivity_checks"})


def shape_agrees(ref: Any, ours: Any) -> bool:
    if isinstance(ref, dict):
        return isinstance(ours, dict) and all(
            k in ours and shape_agrees(v, ours[k]) for k, v in ref.items()
        )
    if isinstance(ref, list):
        return isinstance(ours, list) and (not ref or all(shape_agrees(ref[0], o) for o in ours))
    if ref is None or ours is None:
        return ref is None
    return type(ref) is type(ours)


def _mode(value: Any) -> Any:
    """Directories: without the group-write bit (26.9.6 makes them 0775, we make them 0755)."""
    if isinstance(value, int) and stat.S_ISDIR(value):
        return value & ~stat.S_IWGRP
    return value


def body_agrees(ref: Any, ours: Any, volatile: frozenset[str], key: str | None = None) -> bool:
    if key in volatile or key in VOLATILE or key in TEXT or key in SHAPE_LISTS:
        return shape_agrees(ref, ours)
    if key == "mode":
        return bool(_mode(ref) == _mode(ours))
    if isinstance(ref, dict):
        return isinstance(ours, dict) and all(
            k in ours and body_agrees(v, ours[k], volatile, k) for k, v in ref.items()
        )
    if isinstance(ref, list):
        if not isinstance(ours, list) or len(ref) != len(ours):
            return False
        if all(isinstance(x, dict) and "name" in x for x in ref + ours):  # listings: by name
            ref, ours = sorted(ref, key=_by_name), sorted(ours, key=_by_name)
        return all(body_agrees(r, o, volatile, key) for r, o in zip(ref, ours, strict=True))
    if isinstance(ref, bytes) and ref[:2] == b"PK":
        try:
            return isinstance(ours, bytes) and _zips_agree(ref, ours)
        except zipfile.BadZipFile:
            return ref == ours
    return bool(ref == ours)


def _by_name(x: dict[str, Any]) -> str:
    return str(x["name"])


def compare(
    actions: list[Action],
    ref: dict[str, Answer],
    ours: dict[str, Answer],
    departures: dict[tuple[str, str], str] = DEPARTURES,
) -> list[dict]:
    rows = []
    for step in (a for a in actions if isinstance(a, Step)):
        r, o = ref[step.name], ours[step.name]
        agree = {
            "status": r.status == o.status,
            "type": r.media == o.media,
            "body": body_agrees(r.body, o.body, step.volatile),
        }
        for kind in KINDS:
            rows.append(
                {
                    "step": step.name,
                    "kind": kind,
                    "new": step.new,
                    "agree": agree[kind],
                    "departure": departures.get((step.name, kind)) if not agree[kind] else None,
                    "reference": r.brief(),
                    "ours": o.brief(),
                }
            )
    return rows


def report(rows: list[dict]) -> tuple[str, bool]:
    def count(sel: list[dict]) -> str:
        return f"{sum(r['agree'] for r in sel)}/{len(sel)}"

    old = [r for r in rows if not r["new"]]
    new = [r for r in rows if r["new"]]
    agreeing = sum(r["agree"] for r in rows)
    departures = [r for r in rows if not r["agree"] and r["departure"]]
    unexplained = [r for r in rows if not r["agree"] and not r["departure"]]
    lines = [
        f"agree on {agreeing} of {len(rows)} observations "
        f"(old routes {count(old)}, new routes {count(new)}); "
        f"{len(departures)} listed departures, {len(unexplained)} unexplained",
    ]
    seen: set[str] = set()
    for r in departures:
        if r["step"] not in seen:
            seen.add(r["step"])
            lines.append(f"  departure  {r['step']}: {r['departure']}")
    for r in unexplained:
        lines += [
            f"  DIFFERS    {r['step']} [{r['kind']}]",
            f"      reference: {r['reference']}",
            f"      ours:      {r['ours']}",
        ]
    return "\n".join(lines), not unexplained


#: Routes the conversation counts as new (26.09's manager calls them) that 23.9.10 has too.
IN_23 = frozenset(
    {"/volume/performance-metric", "/volume/quota", "/folder/metadata", "/folder/file/fetch"}
)


def _in_23(step: Step) -> bool:
    return step.door != "internal" and (not step.new or step.path in IN_23)


def run(scripts: Path, peer_dir: Path, release: Release = RELEASES["26.9.6"]) -> list[dict]:
    """Every observation of the conversation (for 23.9.10: its routes, the manager's doors)."""
    actions = conversation()
    if release.name == "23.9.10":
        actions = [a for a in actions if not isinstance(a, Step) or _in_23(a)]
    with Reference(scripts, peer_dir, release).running() as doors:
        ref = play(doors, actions)
    with tempfile.TemporaryDirectory(prefix="compat-") as scratch:
        with Ours(Path(scratch), release.dialect).running() as doors:
            ours = play(doors, actions)
    return compare(actions, ref, ours, release.departures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared")
    parser.add_argument("--against", choices=sorted(RELEASES), default="26.9.6")
    parser.add_argument("--json", type=Path, help="write every observation here")
    parser.add_argument("--strict", action="store_true", help="exit 1 on an unexplained one")
    args = parser.parse_args()
    release = RELEASES[args.against]
    print(
        f"reference: storage-proxy {release.name}; ours: [api.manager] compat = {release.dialect!r}"
    )
    try:
        rows = run(args.shared / "bench-peer", HERE / release.peer_dir, release)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"cannot run: {e}")
        return 2
    text, clean = report(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if args.strict and not clean else 0


if __name__ == "__main__":
    sys.exit(main())
