"""Vfolder roots held open between the reads a local volume makes on the event loop.

Every read resolves its path beneath a descriptor of the vfolder root (:mod:`.beneath`).  Opening
that root is a walk of its path from ``/`` and a ``close`` afterwards: on a volume serving many
small files, a few percent of each request.  Where reads run on the event loop
(``inline_reads``), a root's descriptor is kept for the next reads of the same vfolder, and let go

- as soon as any process of the node changes what a vfolder's path names (a vfolder created,
  deleted into the trash, cloned into place): it bumps a counter shared by the node's processes
  (:mod:`..infra.epoch`, a dot-file at the volume's top, where no vfolder is), and every process
  lets go of every root it holds at its next read;
- after ``ROOT_TTL`` seconds in any case, so that a change made elsewhere (another node that
  shares the volume, an operator's hand) is seen that late at most;
- beyond ``ROOTS_HELD`` vfolders, oldest first.

Only the event loop's thread uses a held descriptor, and only between two awaits (the open below
the root is synchronous): nothing else can be using one when it is closed, so its number is never
reused under a reader.  A root whose time is up is closed by a timer on that loop too, so an idle
worker pins no directory (a deleted one, or a file system being unmounted) past its time.  The
counter is read with ``pread`` (a volume's file may be shrunk or fill up under us: that reads as a
change, never as a fault) and bumped through a descriptor of its own, so a vfolder deleted while
its volume is being shut down still tells the other workers.  Volumes that reserve names below
their roots (CephFS ``.snap``) or read in threads open the root per operation as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..core.types import VFolderID
from ..infra.epoch import Epoch
from . import beneath

log = logging.getLogger(__name__)

#: Seconds a root is held at most (the staleness bound for changes made by other nodes).
ROOT_TTL = 1.0
#: Vfolder roots one process holds at most (descriptors).
ROOTS_HELD = 64
#: The counter's file, at the volume's top (dot-entries there are the proxy's, never a vfolder's).
EPOCH_NAME = ".roots.epoch"


class HeldRoots:
    """The vfolder roots one process holds for one volume."""

    def __init__(
        self, path: str, epoch: Epoch, ttl: float = ROOT_TTL, limit: int = ROOTS_HELD
    ) -> None:
        self.path = path  # the counter's file
        self._epoch = epoch
        self._ttl = ttl
        self._limit = limit
        self._seen = epoch.read()
        self._held: dict[VFolderID, tuple[int, float]] = {}  # vfid -> (fd, good until)
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def open(cls, mount: Path) -> HeldRoots | None:
        """Roots held for the volume at ``mount`` (blocking); None where the counter cannot be
        kept there (a read-only or full volume, something else at its name): roots are then
        opened per read."""
        path = str(mount / EPOCH_NAME)
        try:
            return cls(path, Epoch(path, mapped=False))
        except OSError as e:
            log.warning("vfolder roots are opened per read on %s: %s", mount, e)
            return None

    def fd(self, vfid: VFolderID, path: str, missing: Callable[[VFolderID], Exception]) -> int:
        """A descriptor of ``vfid``'s root at ``path``, good until the caller's next await;
        ``missing(vfid)`` is raised when there is no directory there (event loop thread)."""
        try:
            seen = self._epoch.read()
        except OSError:
            seen = -2  # the counter cannot be read: every read opens its root afresh
        if seen != self._seen or seen == -2:  # some process changed what a vfolder path names
            self.release()
            self._seen = seen
        now = time.monotonic()
        held = self._held.get(vfid)
        if held is not None:
            if held[1] > now:
                return held[0]
            del self._held[vfid]
            os.close(held[0])
        try:
            fd = beneath.open_root(path)
        except (FileNotFoundError, NotADirectoryError):
            raise missing(vfid) from None
        if len(self._held) >= self._limit:
            oldest = next(iter(self._held))
            os.close(self._held.pop(oldest)[0])
        self._held[vfid] = (fd, now + self._ttl)
        if self._timer is None:
            self._arm(self._ttl)
        return fd

    def release(self) -> None:
        """Close every held root (this process)."""
        held, self._held = self._held, {}
        for fd, _ in held.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.release()
        self._epoch.close()

    def _arm(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (used outside a loop: roots go at the next read after their time)
            return
        self._timer = loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        """Close the roots whose time is up; look again when the next one's is."""
        self._timer = None
        now = time.monotonic()
        for vfid, (fd, until) in list(self._held.items()):
            if until <= now:
                del self._held[vfid]
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._held:
            self._arm(max(min(until for _, until in self._held.values()) - now, 0.01))

    def __len__(self) -> int:
        return len(self._held)


def roots_changed(counter: str) -> None:
    """What a vfolder's path names has changed (called once the change is made): every process
    of the node lets go of the roots it holds for the volume whose counter file is ``counter``
    (blocking: a lock on the file; works whatever this process holds, even once its volume is
    shut down).  A counter that cannot be bumped is logged: other workers then see the change
    only when their roots' time is up."""
    try:
        Epoch.bump_file(counter)
    except OSError as e:
        log.error("could not tell the workers that a vfolder changed (%s): %s", counter, e)
