"""Fair shares of the costly operations: one caller cannot take every thread from the others.

A listing of a directory with hundreds of thousands of entries, or a zip of a deep tree, costs
seconds of a worker's threads and memory however small the page asked for.  Each caller (a
user, a manager, a signed token — :attr:`Actor.principal`) may run ``per_caller`` of them at
once in a process; more wait their turn, and a turn that does not come within ``wait`` seconds
is refused (429), so a tenant firing requests in bulk slows only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ..core.errors import TooManyRequests

#: Seconds a costly request waits for its caller's turn before it is refused.
DEFAULT_WAIT = 30.0


class FairShares:
    def __init__(self, per_caller: int, wait: float = DEFAULT_WAIT) -> None:
        self.per_caller = per_caller
        self.wait = wait
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, principal: str) -> AsyncIterator[None]:
        """Hold one of ``principal``'s slots for the block."""
        release = await self.hold(principal)
        try:
            yield
        finally:
            release()

    async def hold(self, principal: str) -> Callable[[], None]:
        """Take one of ``principal``'s slots until the returned function is called (once or
        more: a stream that ends and is then closed gives it back once)."""
        slot = self._slots.get(principal)
        if slot is None:
            slot = self._slots[principal] = asyncio.Semaphore(self.per_caller)
        self._users[principal] = self._users.get(principal, 0) + 1
        try:
            async with asyncio.timeout(self.wait):
                await slot.acquire()
        except TimeoutError:
            self._leave(principal)
            raise TooManyRequests(
                f"{self.per_caller} costly requests of this caller are already running; "
                "retry when one has finished",
                running=self.per_caller,
            ) from None
        except BaseException:
            self._leave(principal)
            raise
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                slot.release()
                self._leave(principal)

        return release

    def _leave(self, principal: str) -> None:
        self._users[principal] -= 1
        if not self._users[principal]:  # nobody holds or waits: forget the caller
            del self._users[principal], self._slots[principal]
