"""``POST /token``: a user token for the client API, the file API and the web UI.

Thin: parse, one service call (the minting rule is :meth:`TokenService.mint_user`), shape.  The
answer also carries ``ui_url``, a sign-in link for the web UI with the token in the URL
*fragment*: browsers never send a fragment to the server, so it reaches no access log.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.units import Duration
from ..keys import services
from ..params import read_params

_schema = t.Dict(
    {
        t.Key("user"): t.String(max_length=255),
        t.Key("groups", default=[]): t.List(t.String(max_length=255), max_length=256),
        t.Key("expires_in", default=None): t.Null | Duration(),
    }
)


async def issue(request: web.Request) -> web.Response:
    p = await read_params(request, _schema)
    found = services(request)
    issued = found.tokens.mint_user(p["user"], p["groups"], p["expires_in"])
    return web.json_response(
        {
            "token": issued.token,
            "expires_at": issued.expires_at.isoformat(),
            "ui_url": ui_link(found.dataproxy.client_url, issued.token),
        }
    )


def ui_link(client_url: str, token: str) -> str:
    return f"{client_url.rstrip('/')}/ui/#token={token}"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/token", issue)
