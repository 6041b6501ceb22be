"""``streams.drained``: a client that stalls costs a wake-up every tenth of a second, not every
2 ms (each stalled TLS download on uvloop waited this way for the whole idle timeout)."""

from __future__ import annotations

import asyncio

import pytest

from storage_proxy.api.streams import ClientGone, drained


class Stalled:
    """A transport whose buffer never empties (its client reads nothing)."""

    def __init__(self) -> None:
        self.looks = 0
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        self.looks += 1
        return 1 << 20


async def test_a_stalled_client_is_looked_at_ever_less_often() -> None:
    transport = Stalled()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(drained(transport), 1.0)
    # 2, 4, ... 64 ms, then every 100 ms: about 15 looks in a second (500 at a fixed 2 ms)
    assert 8 <= transport.looks <= 25, transport.looks


async def test_a_transport_that_closes_while_waited_for_is_a_client_gone() -> None:
    transport = Stalled()
    waiting = asyncio.ensure_future(drained(transport))
    await asyncio.sleep(0.05)
    transport.closing = True
    with pytest.raises(ClientGone):
        await asyncio.wait_for(waiting, 1.0)
