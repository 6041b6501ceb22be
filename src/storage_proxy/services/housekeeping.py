"""Periodic chores of one node. For now: dropping expired, abandoned upload sessions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_periodically(
    name: str, interval: float, job: Callable[[], Awaitable[object]]
) -> None:
    """Run ``job`` every ``interval`` seconds until cancelled; a failed run is logged, not fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = await job()
            log.debug("%s: %s", name, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.0fs", name, interval)
