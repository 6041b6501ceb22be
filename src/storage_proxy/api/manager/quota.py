"""Quota scopes: ``POST|GET|PATCH /quota-scope`` and ``DELETE /quota-scope/quota``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.types import QuotaConfig
from ..keys import services
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
    config = _config(params["options"])
    await services(request).quotas.create_scope(params["volume"], params["qsid"], config)
    return web.Response(status=204)


async def describe(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_scope))
    usage = await services(request).quotas.describe_scope(params["volume"], params["qsid"])
    return web.json_response({"used_bytes": usage.used_bytes, "limit_bytes": usage.limit_bytes})


async def update(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_scope, t.Key("options"): QuotaConfigField}))
    config = QuotaConfig(limit_bytes=params["options"]["limit_bytes"])
    await services(request).quotas.update_scope(params["volume"], params["qsid"], config)
    return web.Response(status=204)


async def unset(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_scope))
    await services(request).quotas.unset_scope(params["volume"], params["qsid"])
    return web.Response(status=204)
