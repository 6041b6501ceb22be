"""Who is asking, for the request being served: which door it came through, which principal, and
its request id.  The doors set it as a request arrives; the audit log reads it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    door: str  # "manager", "client", "internal", or "daemon" for the daemon's own work
    principal: str  # "manager", "user:<id>", "token:<op>", "job:<name>", "daemon"
    request_id: str | None = None


DAEMON = Caller("daemon", "daemon")
_current: ContextVar[Caller] = ContextVar("storage_proxy_caller", default=DAEMON)


def current() -> Caller:
    return _current.get()


def enter(caller: Caller) -> None:
    """Set the caller for the rest of this task (a request's handler task)."""
    _current.set(caller)


def identify(principal: str) -> None:
    """Name the principal once the door has authenticated it."""
    was = _current.get()  # (not dataclasses.replace: this runs on every request)
    _current.set(Caller(was.door, principal, was.request_id))


@contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    token = _current.set(caller)
    try:
        yield
    finally:
        _current.reset(token)
