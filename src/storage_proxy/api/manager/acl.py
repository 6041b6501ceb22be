"""Ownership, ACL entries and the optional per-vfolder quota: ``/folder/acl*``, ``/folder/quota``.

Principals are ``user:<id>`` or ``group:<id>``; permissions ``ro``, ``rw`` or ``rwd``.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ..keys import services
from ..params import VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
_PRINCIPAL = t.Regexp(r"^(user|group):[^\s:]+$")
_PERMISSION = t.Enum("ro", "rw", "rwd")


async def get_acl(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    view = await services(request).access.describe(params["volume"], params["vfid"])
    return web.json_response(view.to_json())


async def put_acl(request: web.Request) -> web.Response:
    """Set owner and kind, and replace every ACL entry (one transaction)."""
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("owner"): t.Null | t.String(),
                t.Key("kind", default="user"): t.Enum("user", "group"),
                t.Key("entries", default=[]): t.List(
                    t.Dict({t.Key("principal"): _PRINCIPAL, t.Key("permission"): _PERMISSION})
                ),
            }
        ),
    )
    entries = [(e["principal"], e["permission"]) for e in params["entries"]]
    view = await services(request).access.replace(
        params["volume"], params["vfid"], params["owner"], params["kind"], entries
    )
    return web.json_response(view.to_json())


async def grant(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict({**_vfolder, t.Key("principal"): _PRINCIPAL, t.Key("permission"): _PERMISSION}),
    )
    view = await services(request).access.grant(
        params["volume"], params["vfid"], params["principal"], params["permission"]
    )
    return web.json_response(view.to_json())


async def revoke(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_vfolder, t.Key("principal"): _PRINCIPAL}))
    view = await services(request).access.revoke(
        params["volume"], params["vfid"], params["principal"]
    )
    return web.json_response(view.to_json())


async def get_quota(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    usage = await services(request).quotas.vfolder_quota(params["volume"], params["vfid"])
    return web.json_response({"used_bytes": usage.used_bytes, "limit_bytes": usage.limit_bytes})


async def set_quota(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("limit_bytes"): t.Null | t.ToInt(gte=0)})
    )
    await services(request).quotas.set_vfolder_quota(
        params["volume"], params["vfid"], params["limit_bytes"]
    )
    return web.Response(status=204)
