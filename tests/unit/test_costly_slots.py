"""FairShares: a caller's costly operations beyond its share wait, then are refused; a slot given
back twice counts once; a caller nobody holds or waits for is forgotten."""

from __future__ import annotations

import asyncio

import pytest

from storage_proxy.core.errors import TooManyRequests
from storage_proxy.services.fairness import FairShares


async def test_a_caller_beyond_its_share_waits_then_is_refused() -> None:
    fair = FairShares(per_caller=2, wait=0.2)
    first, second = await fair.hold("user:a"), await fair.hold("user:a")
    other = await fair.hold("user:b")  # another caller is not held up by a's share
    with pytest.raises(TooManyRequests) as refused:
        await fair.hold("user:a")
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
    waiting = asyncio.create_task(fair.hold("user:a"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    first()
    third = await asyncio.wait_for(waiting, 1)  # the freed slot goes to the one waiting
    first()  # giving back twice counts once: a's share is still full
    with pytest.raises(TooManyRequests):
        await fair.hold("user:a")
    for release in (second, third, other):
        release()
    assert not fair._slots and not fair._users  # noqa: SLF001 - nothing kept for idle callers


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    fair = FairShares(per_caller=1, wait=5)
    release = await fair.hold("user:a")
    waiting = asyncio.create_task(fair.hold("user:a"))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release()
    assert not fair._slots and not fair._users  # noqa: SLF001
    async with fair.turn("user:a"):  # the caller starts afresh
        assert fair._users == {"user:a": 1}  # noqa: SLF001
