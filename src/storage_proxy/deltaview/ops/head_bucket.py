from __future__ import annotations

from aiohttp import web

from .. import xml
from ..context import Call


async def handle(call: Call) -> web.StreamResponse:
    return web.Response(status=200)


async def location(call: Call) -> web.StreamResponse:
    region = call.view.cfg.s3.region or "us-east-1"
    body = f'{xml.HEAD}<LocationConstraint xmlns="{xml.NS}">{region}</LocationConstraint>'
    return web.Response(body=body.encode(), content_type="application/xml")
