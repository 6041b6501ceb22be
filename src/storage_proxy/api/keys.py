"""Typed application keys: the only way handlers reach shared state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..context import RootContext

ROOT_CTX: web.AppKey[RootContext] = web.AppKey("root_ctx")
