"""Read-only as one wrapper around the store (as gaul/s3proxy's ReadOnlyBlobStore): writes are
refused here, before anything reaches the backend; handlers carry no read-only checks."""

from __future__ import annotations

from typing import Any

from .errors import access_denied
from .store import ObjectStore


class ReadOnlyStore:
    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("put", "delete", "post", "begin_write"):

            async def refuse(*_a: Any, **_kw: Any) -> Any:
                raise access_denied("read-only", "The Delta Lake view is read-only.")

            return refuse
        return getattr(self._inner, name)
