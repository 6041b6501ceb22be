"""The e2e suite's own fixtures (the daemon factory is a root plugin: ``daemon_fixtures``)."""

from __future__ import annotations

import pytest
from e2e_support import Daemon, StartDaemon


@pytest.fixture
def daemon(start_daemon_factory: StartDaemon) -> Daemon:
    """A daemon with a single vfs volume named ``vol1``."""
    return start_daemon_factory()
