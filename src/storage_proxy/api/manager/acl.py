"""Ownership, ACL entries and the optional per-vfolder quota: ``/folder/acl*``, ``/folder/quota``.

Principals are ``user:<id>`` or ``group:<id>``; permissions ``ro``, ``rw`` or ``rwd``.
"""

from __future__ import annotations

from typing import Any

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter, VFolderNotFound
from ...core.records import AclEntry, Permission
from ...core.types import VFolderID
from ..keys import ROOT_CTX
from ..params import VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
_PRINCIPAL = t.Regexp(r"^(user|group):[^\s:]+$")
_PERMISSION = t.Enum("ro", "rw", "rwd")


def _split(principal: str) -> tuple[str, str]:
    kind, _, ident = principal.partition(":")
    return kind, ident


async def _registered(request: web.Request, volume: str, vfid: VFolderID) -> None:
    """The vfolder must exist; one created outside this daemon is registered on first use."""
    ctx = request.app[ROOT_CTX]
    vol = ctx.volumes.get(volume)
    if not await vol.vfolder_exists(vfid):
        raise VFolderNotFound(f"no vfolder {vfid} on volume {volume!r}")
    if await ctx.metadata.get_vfolder(volume, str(vfid)) is None:
        await ctx.metadata.register_vfolder(volume, str(vfid), str(vfid.quota_scope_id))


async def _describe(request: web.Request, volume: str, vfid: VFolderID) -> dict[str, Any]:
    ctx = request.app[ROOT_CTX]
    record = await ctx.metadata.get_vfolder(volume, str(vfid))
    assert record is not None
    entries = await ctx.metadata.get_acl(volume, str(vfid))
    return {
        "owner": record.owner,
        "kind": record.kind,
        "entries": [e.to_json() for e in entries],
    }


async def get_acl(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    await _registered(request, params["volume"], params["vfid"])
    return web.json_response(await _describe(request, params["volume"], params["vfid"]))


async def put_acl(request: web.Request) -> web.Response:
    """Set owner and kind, and replace every ACL entry."""
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
    ctx = request.app[ROOT_CTX]
    volume, vfid = params["volume"], params["vfid"]
    await _registered(request, volume, vfid)
    await ctx.metadata.update_vfolder(volume, str(vfid), owner=params["owner"], kind=params["kind"])
    for old in await ctx.metadata.get_acl(volume, str(vfid)):
        await ctx.metadata.remove_acl_entry(volume, str(vfid), old.principal_type, old.principal)
    for item in params["entries"]:
        kind, ident = _split(item["principal"])
        entry = AclEntry(kind, ident, Permission.parse(item["permission"]))
        await ctx.metadata.set_acl_entry(volume, str(vfid), entry)
    return web.json_response(await _describe(request, volume, vfid))


async def grant(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict({**_vfolder, t.Key("principal"): _PRINCIPAL, t.Key("permission"): _PERMISSION}),
    )
    ctx = request.app[ROOT_CTX]
    volume, vfid = params["volume"], params["vfid"]
    await _registered(request, volume, vfid)
    kind, ident = _split(params["principal"])
    entry = AclEntry(kind, ident, Permission.parse(params["permission"]))
    await ctx.metadata.set_acl_entry(volume, str(vfid), entry)
    return web.json_response(await _describe(request, volume, vfid))


async def revoke(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_vfolder, t.Key("principal"): _PRINCIPAL}))
    ctx = request.app[ROOT_CTX]
    volume, vfid = params["volume"], params["vfid"]
    await _registered(request, volume, vfid)
    kind, ident = _split(params["principal"])
    if not await ctx.metadata.remove_acl_entry(volume, str(vfid), kind, ident):
        raise InvalidParameter(f"{params['principal']} has no entry on this vfolder")
    return web.json_response(await _describe(request, volume, vfid))


async def get_quota(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    ctx = request.app[ROOT_CTX]
    volume, vfid = params["volume"], params["vfid"]
    await _registered(request, volume, vfid)
    record = await ctx.metadata.get_vfolder(volume, str(vfid))
    usage = await ctx.usage.get(volume, vfid)
    limit = record.limit_bytes if record else None
    return web.json_response({"used_bytes": usage.used_bytes, "limit_bytes": limit})


async def set_quota(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("limit_bytes"): t.Null | t.ToInt(gte=0)})
    )
    ctx = request.app[ROOT_CTX]
    volume, vfid = params["volume"], params["vfid"]
    await _registered(request, volume, vfid)
    await ctx.volumes.get(volume).set_vfolder_quota(vfid, params["limit_bytes"])
    await ctx.metadata.update_vfolder(volume, str(vfid), limit_bytes=params["limit_bytes"])
    return web.Response(status=204)
