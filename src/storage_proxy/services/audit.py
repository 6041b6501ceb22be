"""The audit log: one JSON line per file or vfolder operation, whichever door it came through.

Every operation a service carries out for a caller is wrapped in :meth:`AuditLog.operation`, which
writes, once it has ended: time, request id, principal, door, volume, vfid, path, operation,
bytes, result (``ok`` or the error's stable code) and its duration — plus ``vfolder_id``,
``backend`` and ``operation`` as labels for a log stack such as Loki/promtail.  Never a secret:
principals are ids, paths are the users' own, tokens never appear.

Lines go to their own sink (``[audit] sink``: a file, ``stdout``, or ``none``) through a queue
and a writer thread, so the event loop never waits on it.  Recent entries of a vfolder can be
asked for (``GET /folder/audit``): read back from the file sink (every worker of a node writes
there), or kept in memory when there is no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import caller
from ..core.errors import StorageProxyError
from ..core.types import VFolderID
from .auditline import dated, dumps

#: Entries of each vfolder kept in memory for ``recent`` when there is no file to read back.
RECENT_PER_VFOLDER = 100
MAX_VFOLDERS_IN_MEMORY = 10_000
#: How much of the end of the file sink ``recent`` reads back at most.
TAIL_BYTES = 8 << 20
#: Seconds between checks that the file sink was moved away (logrotate).
ROTATION_CHECK = 1.0
MAX_BATCH = 10_000
#: How long the writer lets lines gather before it writes them (a line is on disk this late).
BATCH_WAIT = 0.05

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AuditEntry:
    operation: str
    volume: str
    vfid: str
    path: str | None = None
    bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    def __init__(
        self,
        sink: str = "none",
        backend_of: Callable[[str], str] | None = None,
    ) -> None:
        """``sink``: a file path, ``"stdout"`` or ``"none"``."""
        self._backend_of = backend_of or (lambda _: "")
        self._path = None if sink in ("none", "stdout", "") else Path(sink)
        self._recent: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._writer: _LineWriter | None = None
        if sink != "none":
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _LineWriter(self._path)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def operation(
        self,
        op: str,
        volume: str,
        vfid: VFolderID | str,
        *,
        path: str | None = None,
        nbytes: int | None = None,
    ) -> _Operation:
        """Audit what the block does (``async with``); set ``entry.bytes`` inside it once they
        are known."""
        return _Operation(self, AuditEntry(op, volume, str(vfid), path, nbytes))

    def record(self, entry: AuditEntry, result: str, duration: float = 0.0) -> None:
        who = caller.current()
        line = {
            "time": time.time(),  # made an ISO date by the writer (or by recent())
            "request_id": who.request_id,
            "principal": who.principal,
            "door": who.door,
            "volume": entry.volume,
            "vfid": entry.vfid,
            "path": entry.path,
            "operation": entry.operation,
            "bytes": entry.bytes,
            "result": result,
            "duration_ms": round(duration * 1000, 1),
            "labels": {
                "vfolder_id": entry.vfid,
                "backend": self._backend_of(entry.volume),
                "operation": entry.operation,
            },
            **entry.extra,
        }
        if self._writer is not None:
            self._writer.put(line)  # serialized and written by the writer's thread
        if self._path is None:
            self._remember(line)

    def _remember(self, line: dict[str, Any]) -> None:
        key = f"{line['volume']}/{line['vfid']}"
        kept = self._recent.get(key)
        if kept is None:
            kept = self._recent[key] = deque(maxlen=RECENT_PER_VFOLDER)
            while len(self._recent) > MAX_VFOLDERS_IN_MEMORY:
                self._recent.popitem(last=False)
        self._recent.move_to_end(key)
        kept.append(line)

    def recent(self, volume: str, vfid: VFolderID | str, limit: int = 100) -> list[dict[str, Any]]:
        """The vfolder's latest entries, newest first (blocking when read from the file)."""
        if self._path is None:
            kept = self._recent.get(f"{volume}/{vfid}", deque())
            return [dated(line) for line in list(reversed(kept))[:limit]]
        return _tail(self._path, volume, str(vfid), limit)


class _Operation:
    """``async with audit.operation(...) as entry``: one line when the block ends, ``ok`` or
    the error's stable code (a class, not a generator: this wraps every file operation)."""

    __slots__ = ("_log", "entry", "_started")

    def __init__(self, log: AuditLog, entry: AuditEntry) -> None:
        self._log = log
        self.entry = entry
        self._started = 0.0

    async def __aenter__(self) -> AuditEntry:
        self._started = time.monotonic()
        return self.entry

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            result = "ok"
        elif isinstance(exc, StorageProxyError):
            result = exc.code
        elif isinstance(exc, GeneratorExit | asyncio.CancelledError):
            result = "cancelled"
        else:
            result = type(exc).__name__
        self._log.record(self.entry, result, time.monotonic() - self._started)


class _LineWriter:
    """Audit lines to a file (reopened when logrotate moves it) or stdout, from one thread.

    The event loop only queues the line's dict; the thread takes whatever has queued up, turns
    it into JSON and writes it in one call -- a busy daemon pays one thread wake-up and one write
    per batch (every ``BATCH_WAIT`` at most), and one ``stat`` a second to notice a rotated file.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._file: Any = None
        self._identity: tuple[int, int] | None = None
        self._checked = 0.0
        self._open()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def put(self, line: dict[str, Any]) -> None:
        self._queue.put(line)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        if self._path is not None and self._file is not None:
            self._file.close()

    def _open(self) -> None:
        if self._path is None:
            self._file = sys.stdout
            return
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        st = os.fstat(self._file.fileno())
        self._identity = (st.st_dev, st.st_ino)

    def _reopen_if_moved(self) -> None:
        now = time.monotonic()
        if self._path is None or now - self._checked < ROTATION_CHECK:
            return
        self._checked = now
        try:
            st = os.stat(self._path)
            moved = (st.st_dev, st.st_ino) != self._identity
        except FileNotFoundError:
            moved = True
        if moved:
            self._file.close()
            self._open()

    def _run(self) -> None:
        while True:
            lines = [self._queue.get()]
            if lines[0] is not None:
                time.sleep(BATCH_WAIT)  # let a busy loop queue more: one wake-up per batch
            with contextlib.suppress(queue.Empty):
                while len(lines) < MAX_BATCH:
                    lines.append(self._queue.get_nowait())
            done = lines[-1] is None
            text = "".join(_json_line(line) for line in lines if line is not None)
            try:
                self._reopen_if_moved()
                self._file.write(text)
                self._file.flush()
            except (OSError, ValueError):  # a full disk or a closed stdout loses lines, not us
                log.exception("could not write %d audit line(s)", len(lines))
            if done:
                return


def _tail(path: Path, volume: str, vfid: str, limit: int) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    found: list[dict[str, Any]] = []
    for raw in reversed(data.splitlines()):
        if vfid.encode() not in raw:
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # the first, partial line of the tail
        if line.get("volume") == volume and line.get("vfid") == vfid:
            found.append(line)
            if len(found) >= limit:
                break
    return found


def _json_line(line: dict[str, Any]) -> str:
    text = dumps(line)
    if not text.isascii() and not _encodable(text):
        # a name with lone surrogates (from a hostile request) is kept, escaped
        text = json.dumps(dated(line), ensure_ascii=True, default=str)
    return text + "\n"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
