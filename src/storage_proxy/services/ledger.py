"""Keeps this process's share of the quota ledger alive: holdings renewed, dead ones dropped.

A holding lives ``HOLDING_TTL`` seconds unless renewed; a process renews its own every third
of that, so a killed process's reservations are gone within ``HOLDING_TTL`` — or at once, when a
process of the same node finds it dead at start-up.  Written entries are kept ``WRITTEN_KEEP``
seconds: longer than any usage cache, after which every scan sees those bytes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from ..metadata.store import MetadataStore
from ..volumes.quota import HOLDING_TTL, WRITTEN_KEEP

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (b"Z", b"X")


class LedgerKeeper:
    """Renews this process's holdings in the shared ledger and prunes what has expired."""

    def __init__(self, metadata: MetadataStore, holder: str) -> None:
        self._metadata = metadata
        self.holder = holder
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.drop_dead_neighbours()
        self._task = asyncio.create_task(self._run(), name="quota-ledger-keeper")

    async def drop_dead_neighbours(self) -> list[str]:
        """Forget what processes of this node that no longer run still hold (a worker killed
        with -9): their writes cannot finish, so their reservations need not wait to expire."""
        node, _, _ = self.holder.rpartition("/")
        dead = []
        for holder in await self._metadata.ledger_holders(f"{node}/"):
            pid = holder.rpartition("/")[2]
            if holder != self.holder and pid.isdigit() and not _alive(int(pid)):
                await self._metadata.drop_holdings(holder)
                dead.append(holder)
        if dead:
            log.info("dropped the quota holdings of %d dead process(es) of this node", len(dead))
        return dead

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        now = time.time()
        await self._metadata.renew_holdings(self.holder, now, HOLDING_TTL)
        await self._metadata.prune_ledger(now - WRITTEN_KEEP, now)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HOLDING_TTL / 3)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store is away: holdings expire later, not wrongly
                log.warning("could not renew quota holdings: %s", e)
