"""Quota scopes: ``POST|GET|PATCH /quota-scope`` and ``DELETE /quota-scope/quota``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import QuotaScopeNotFound
from ...core.types import QuotaConfig
from ..keys import ROOT_CTX
from ..params import QuotaConfigField, QuotaScopeIDField, read_params

_scope = {t.Key("volume"): t.String(), t.Key("qsid"): QuotaScopeIDField()}


def _config(raw: dict | None) -> QuotaConfig | None:
    return None if raw is None else QuotaConfig(limit_bytes=raw["limit_bytes"])


async def create(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict({**_scope, t.Key("options", default=None): t.Null | QuotaConfigField}).allow_extra(
            "extra_args"
        ),
    )
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    await volume.quota_model.create_quota_scope(params["qsid"], _config(params["options"]))
    return web.Response(status=204)


async def describe(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_scope))
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    usage = await volume.quota_model.describe_quota_scope(params["qsid"])
    if usage is None:
        raise QuotaScopeNotFound(f"quota scope {params['qsid']} does not exist")
    return web.json_response({"used_bytes": usage.used_bytes, "limit_bytes": usage.limit_bytes})


async def update(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_scope, t.Key("options"): QuotaConfigField}))
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    config = _config(params["options"])
    assert config is not None
    if not await volume.quota_model.quota_scope_exists(params["qsid"]):
        await volume.quota_model.create_quota_scope(params["qsid"], config)  # as the reference does
    else:
        await volume.quota_model.update_quota_scope(params["qsid"], config)
    return web.Response(status=204)


async def unset(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_scope))
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    if not await volume.quota_model.quota_scope_exists(params["qsid"]):
        raise QuotaScopeNotFound(f"quota scope {params['qsid']} does not exist")
    await volume.quota_model.unset_quota(params["qsid"])
    return web.Response(status=204)
