"""Small helpers shared by the test suites (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import socket
import uuid

from storage_proxy.core.types import QuotaScopeID, QuotaScopeType, VFolderID


def new_qsid(kind: QuotaScopeType = QuotaScopeType.USER) -> QuotaScopeID:
    return QuotaScopeID(kind, uuid.uuid4())


def new_vfid(qsid: QuotaScopeID | None = None) -> VFolderID:
    return VFolderID(qsid or new_qsid(), uuid.uuid4())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
