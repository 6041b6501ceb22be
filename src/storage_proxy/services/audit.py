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

import contextlib
import json
import logging
import logging.handlers
import os
import queue
import sys
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core import caller
from ..core.errors import StorageProxyError
from ..core.types import VFolderID

#: Entries of each vfolder kept in memory for ``recent`` when there is no file to read back.
RECENT_PER_VFOLDER = 100
MAX_VFOLDERS_IN_MEMORY = 10_000
#: How much of the end of the file sink ``recent`` reads back at most.
TAIL_BYTES = 8 << 20


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
        self._listener: logging.handlers.QueueListener | None = None
        self._queue: queue.SimpleQueue[logging.LogRecord] | None = None
        if sink != "none":
            target: logging.Handler
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                target = logging.handlers.WatchedFileHandler(self._path, encoding="utf-8")
            else:
                target = logging.StreamHandler(sys.stdout)
            target.setFormatter(logging.Formatter("%(message)s"))
            self._queue = queue.SimpleQueue()
            self._listener = logging.handlers.QueueListener(self._queue, target)
            self._listener.start()

    def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.stop()
            for handler in listener.handlers:
                handler.close()

    @contextlib.asynccontextmanager
    async def operation(
        self,
        op: str,
        volume: str,
        vfid: VFolderID | str,
        *,
        path: str | None = None,
        nbytes: int | None = None,
    ) -> AsyncIterator[AuditEntry]:
        """Audit what the block does; set ``entry.bytes`` inside it once they are known."""
        entry = AuditEntry(op, volume, str(vfid), path, nbytes)
        started = time.monotonic()
        result = "ok"
        try:
            yield entry
        except StorageProxyError as e:
            result = e.code
            raise
        except BaseException as e:
            result = "cancelled" if isinstance(e, GeneratorExit) else type(e).__name__
            raise
        finally:
            self.record(entry, result, time.monotonic() - started)

    def record(self, entry: AuditEntry, result: str, duration: float = 0.0) -> None:
        who = caller.current()
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
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
        if self._queue is not None:
            text = json.dumps(line, ensure_ascii=False, default=str)
            if not text.isascii() and not _encodable(text):
                # a name with lone surrogates (from a hostile request) is kept, escaped
                text = json.dumps(line, ensure_ascii=True, default=str)
            record = logging.LogRecord("storage_proxy.audit", logging.INFO, "", 0, text, None, None)
            self._queue.put(record)
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
            return list(reversed(kept))[:limit]
        return _tail(self._path, volume, str(vfid), limit)


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


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
