"""The event loop a daemon process runs on: ``[storage-proxy] event-loop``.

``asyncio`` is the standard library's loop; ``uvloop`` is libuv's (fewer Python frames per
socket event, which shows on many small requests). Both run the same code: nothing in the daemon
depends on which one it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from . import runtime


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``name`` (``None``: asyncio's own)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name != "asyncio":
        raise ValueError(f"unknown event loop {name!r}")
    return None


def run(main: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
    """Run ``main()`` to completion on a new loop of kind ``name`` (the process
    tuned first, :mod:`.runtime`)."""
    runtime.tune()
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        runner.run(main())


def name_of(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind ``loop`` is (for the log)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
