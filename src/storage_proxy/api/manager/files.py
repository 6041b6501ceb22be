"""File operations inside a vfolder: ``/folder/file/mkdir|list|rename|move|delete|fetch`` and
``/folder/file/delete-async``."""

from __future__ import annotations

import stat

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidPath, StorageProxyError
from ...core.paths import RelPath
from ...core.types import DirEntryType
from ...services.access import Actor
from ..dialect import wire
from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params
from ..streams import write_chunk
from .wire import fs_errors

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
MAX_BATCH = 50
_RAW_PATH = t.String(allow_blank=True)
MANAGER = Actor.manager()


async def mkdir(request: web.Request) -> web.Response:
    """One path or a list of up to 50.  26.09: per-item results always, a malformed path being
    one failed item (as 26.9.6 does with ``..``); 23.09: one path (a list is a parameter error),
    204 or its error (as 23.9.10 does)."""
    rules = wire(request)
    many = t.List(_RAW_PATH, min_length=1, max_length=MAX_BATCH)
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpath"): _RAW_PATH | many if rules.mkdir_results else _RAW_PATH,
                t.Key("parents", default=True): t.ToBool,
                t.Key("exist_ok", default=False): t.ToBool,
            }
        ),
    )
    single = not isinstance(params["relpath"], list)
    raw = [params["relpath"]] if single else params["relpath"]
    parsed: list[RelPath | StorageProxyError] = [
        _parse_dir(p, strict=not rules.mkdir_results) for p in raw
    ]
    made = await services(request).files.mkdir(
        MANAGER,
        params["volume"],
        params["vfid"],
        [p for p in parsed if isinstance(p, RelPath)],
        parents=params["parents"],
        exist_ok=params["exist_ok"],
    )
    outcomes = iter(made)
    results = [p if isinstance(p, StorageProxyError) else next(outcomes) for p in parsed]
    if not rules.mkdir_results:
        with fs_errors(params["relpath"]):
            if results[0] is not None:
                raise results[0]
        return web.Response(status=204)
    success, failed = [], []
    for rel, error in zip(raw, results, strict=True):
        if error is None:
            success.append({"item": rel, "msg": None})
        else:
            failed.append({"item": rel, "msg": error.detail, "code": error.code})
    status = 200 if not failed else (207 if success else 422)
    return web.json_response({"results": {"success": success, "failed": failed}}, status=status)


def _parse_dir(raw: str, *, strict: bool) -> RelPath | StorageProxyError:
    try:
        return RelPath.parse(raw, allow_root=False)
    except InvalidPath as e:
        if strict:
            raise
        return e


async def list_files(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("relpath", default="."): RelPathField()})
    )
    with fs_errors(params["relpath"]):
        entries = await services(request).files.list_dir(
            MANAGER, params["volume"], params["vfid"], params["relpath"]
        )
    items = [e.to_json() for e in entries]
    # Backend.AI sends the whole st_mode, the file type's bits too
    for entry, item in zip(entries, items, strict=True):
        item["stat"]["mode"] = entry.stat.mode | _TYPE_BITS[entry.type]  # type: ignore[index]
    return web.json_response({"items": items})


_TYPE_BITS = {
    DirEntryType.FILE: stat.S_IFREG,
    DirEntryType.DIRECTORY: stat.S_IFDIR,
    DirEntryType.SYMLINK: stat.S_IFLNK,
}


async def rename(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpath"): RelPathField(allow_root=False),
                t.Key("new_name"): t.String(),
                t.Key("is_dir", default=False): t.ToBool,  # ignored, as by the reference
            }
        ),
    )
    with fs_errors(params["relpath"]):
        await services(request).files.rename(
            MANAGER, params["volume"], params["vfid"], params["relpath"], params["new_name"]
        )
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("src_relpath"): RelPathField(allow_root=False),
                t.Key("dst_relpath"): RelPathField(allow_root=False),
            }
        ),
    )
    with fs_errors(params["src_relpath"], by_subject=True):
        await services(request).files.move(
            MANAGER, params["volume"], params["vfid"], params["src_relpath"], params["dst_relpath"]
        )
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpaths"): t.List(RelPathField(allow_root=False), min_length=1),
                t.Key("recursive", default=False): t.ToBool,
            }
        ),
    )
    # 26.09: a path that is already gone is deleted (as 26.9.6 answers); 23.09: 400 ENOENT
    with fs_errors(*params["relpaths"]):
        await services(request).files.delete(
            MANAGER,
            params["volume"],
            params["vfid"],
            params["relpaths"],
            recursive=params["recursive"],
            missing_ok=wire(request).delete_missing_ok,
        )
    return web.json_response({"status": "ok"})


async def fetch(request: web.Request) -> web.StreamResponse:
    """A file's bytes straight to the manager (it reads task logs this way).  A missing file or
    a directory is an error (404, 400) — Backend.AI answers both 200 with an empty body."""
    params = await read_params(request, t.Dict({**_vfolder, t.Key("relpath"): RelPathField()}))
    chunks = services(request).files.read(
        MANAGER, params["volume"], params["vfid"], params["relpath"]
    )
    try:
        first = await anext(chunks, b"")  # refusals come before the answer starts
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            if first:
                await write_chunk(request, response, first)
            async for chunk in chunks:
                await write_chunk(request, response, chunk)
            await response.write_eof()
        except ConnectionError:  # the manager went away: nothing to answer
            request["client_gone"] = True
        return response
    finally:
        await chunks.aclose()


async def delete_async(request: web.Request) -> web.Response:
    """26.09's background delete: 202 ``{"bgtask_id"}`` (follow it with ``GET /bgtask/{id}``).
    A delete that cannot succeed — an unknown volume or vfolder, a path that is not below the
    vfolder — is refused at once instead of being accepted and failing later."""
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpaths"): t.List(RelPathField(allow_root=False)),
                t.Key("recursive", default=False): t.ToBool,
            }
        ),
        body_required=True,
    )
    task_id = await services(request).files.start_delete(
        MANAGER, params["volume"], params["vfid"], params["relpaths"], recursive=params["recursive"]
    )
    return web.json_response({"bgtask_id": task_id}, status=202, headers={"X-BgTask-ID": task_id})
