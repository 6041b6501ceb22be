from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from .. import xml
from ..config import BUCKET
from ..context import Call

CREATED = datetime(2024, 1, 1, tzinfo=UTC)


async def handle(call: Call) -> web.StreamResponse:
    return web.Response(body=xml.list_buckets([(BUCKET, CREATED)]), content_type="application/xml")
