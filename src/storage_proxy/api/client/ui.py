"""The web file browser at ``/ui/``: static files from the package, nothing generated.

The page signs in with a user token (typed in, or carried in the URL *fragment* of a link that
``POST /token`` mints: a fragment is never sent to the server, so no log can hold it) and then
speaks only the client API's JSON routes, tus and the download links; it renders every name as
text, never as markup.
"""

from __future__ import annotations

from aiohttp import web

from ...core.errors import NotFound
from ..static import StaticFile, load_static, serve

UI_FILES: web.AppKey[dict[str, StaticFile]] = web.AppKey("ui_files")
INDEX = "index.html"


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": "/ui/"})


async def page(request: web.Request) -> web.Response:
    files = request.app[UI_FILES]
    name = request.match_info.get("name") or INDEX
    file = files.get(name)
    if file is None:
        raise NotFound(f"no file {name!r} in the web UI")
    return serve(request, file)


def add_routes(app: web.Application) -> None:
    app[UI_FILES] = load_static()
    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/{name}", page)
