"""Malformed input gets a clear 4xx with a stable code, never a 500, on every door.

The named cases once answered 500; hypothesis then throws arbitrary JSON values, header values
and paths at the parsers.  Requests go through real sockets to an in-process daemon (raw bytes
where a client library would refuse to send them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from api_fixtures import MANAGER_SECRET, TOKEN_SECRET, Daemon
from harness import user_token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OWNER = "fuzzer"


@pytest.fixture
async def world(daemon: Daemon) -> AsyncIterator[tuple[Daemon, str]]:
    vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=vfid, owner=OWNER)
    assert status == 204
    yield daemon, vfid


def _files_url(vfid: str) -> str:
    scope, folder = vfid.rsplit("/", 1)
    return f"/api/v1/vfolders/vol1/{scope}/{folder}"


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(TOKEN_SECRET, OWNER)}"}


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send exactly these bytes; return the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _head(method: str, path: str, headers: dict[str, bytes], length: int = 0) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: x", b"Connection: close"]
    lines += [k.encode() + b": " + v for k, v in headers.items()]
    lines.append(f"Content-Length: {length}".encode())
    return b"\r\n".join(lines) + b"\r\n"


def assert_clean(status: int, body: bytes, what: object) -> None:
    """No 500; a 4xx is a problem with our code, or one of Backend.AI 26.09's own error shapes
    (per-item ``results`` of a mkdir, ``{"msg", ...}`` of a refused file operation, the text
    404 of an archive download) that still carries our code where it has a JSON body."""
    assert status < 500, (what, status, body[:400])
    if status >= 400 and body and not body.startswith(b"404: File not found: "):
        problem = json.loads(body)
        if "results" in problem:
            assert all(f.get("code") for f in problem["results"]["failed"]), (what, body[:400])
            return
        assert problem.get("code"), (what, body[:400])
        assert problem.get("status") == status or "msg" in problem, (what, body[:400])


# -- the cases that once answered 500 --------------------------------------------------------------
async def test_deeply_nested_json_is_400(world: tuple[Daemon, str]) -> None:
    daemon, vfid = world
    deep = b'{"volume": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = await daemon.manager.post("/folder/file/list", data=deep)
    assert_clean(resp.status, await resp.read(), "nested manager JSON")
    assert resp.status == 400
    resp = await daemon.client.post(
        _files_url(vfid) + "/mkdir", data=b'{"path": ' + b"[" * 100_000 + b"}", headers=_bearer()
    )
    assert resp.status == 400, await resp.text()


@pytest.mark.parametrize("field", ["volume", "relpath", "vfid"])
async def test_lone_surrogates_are_400(world: tuple[Daemon, str], field: str) -> None:
    daemon, vfid = world
    body = {"volume": "vol1", "vfid": vfid, "relpath": "x"}
    body[field] = "bad\ud800name"
    resp = await daemon.manager.post("/folder/file/list", data=json.dumps(body))
    assert_clean(resp.status, await resp.read(), field)
    assert resp.status in (400, 404)


async def test_huge_expiry_is_400(daemon: Daemon) -> None:
    body = {"project": "p", "domain": "d", "content_md5": base64.b64encode(b"0" * 16).decode()}
    for expires in (1e40, -1, "1e40", 10**30, "NaN", float("inf")):
        raw = json.dumps({**body, "expires_in": expires}).replace("Infinity", "1e999")
        resp = await daemon.manager.post("/dataproxy/upload-location", data=raw)
        assert_clean(resp.status, await resp.read(), expires)
        assert resp.status == 400


@pytest.mark.parametrize("offset", ["²", "٣", "1e3", "-1", "0x10", "+1", "1" * 400, "1_0"])
async def test_odd_upload_offsets_are_400(world: tuple[Daemon, str], offset: str) -> None:
    daemon, vfid = world
    status, body = await daemon.call(
        "POST", "/folder/file/upload", volume="vol1", vfid=vfid, relpath="o.bin", size=3
    )
    assert status == 200, body
    head = _head(
        "PATCH",
        f"/upload?token={body['token']}",
        {
            "Tus-Resumable": b"1.0.0",
            "Content-Type": b"application/offset+octet-stream",
            "Upload-Offset": offset.encode(),
        },
        3,
    )
    status, answer = await raw_request(daemon.client.port, head, b"abc")
    assert_clean(status, answer, offset)
    assert status == 400, answer


async def test_multipart_without_boundary_or_with_nul_names_is_400(
    world: tuple[Daemon, str],
) -> None:
    daemon, vfid = world
    url = _files_url(vfid) + "/files/"
    resp = await daemon.client.post(
        url, data=b"--x\r\n", headers={**_bearer(), "Content-Type": "multipart/form-data"}
    )
    assert_clean(resp.status, await resp.read(), "no boundary")
    assert resp.status == 400
    form = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x00b"\r\n\r\n'
        b"data\r\n--B--\r\n"
    )
    headers = {**_bearer(), "Content-Type": "multipart/form-data; boundary=B"}
    resp = await daemon.client.post(url, data=form, headers=headers)
    assert_clean(resp.status, await resp.read(), "NUL filename")
    assert resp.status == 400


async def test_non_ascii_upload_metadata_is_400(world: tuple[Daemon, str]) -> None:
    daemon, vfid = world
    head = _head(
        "POST",
        "/upload",
        {
            "Authorization": f"Bearer {user_token(TOKEN_SECRET, OWNER)}".encode(),
            "Tus-Resumable": b"1.0.0",
            "Upload-Length": b"3",
            "Upload-Metadata": "volume dm9sMQ==,vfid ü€,path eA==".encode(),
        },
    )
    status, body = await raw_request(daemon.client.port, head)
    assert_clean(status, body, "metadata")
    assert status == 400


async def test_non_utf8_manager_auth_header_is_403(daemon: Daemon) -> None:
    head = _head("GET", "/volumes", {"X-BackendAI-Storage-Auth-Token": b"\xff\xfe\x80secret"})
    status, body = await raw_request(daemon.manager.port, head)
    assert_clean(status, body, "auth header")
    assert status == 403


async def test_name_component_over_255_bytes_is_400(world: tuple[Daemon, str]) -> None:
    daemon, vfid = world
    long = "é" * 128  # 256 bytes in UTF-8
    status, body = await daemon.call(
        "POST", "/folder/file/list", volume="vol1", vfid=vfid, relpath=long
    )
    assert (status, body["code"]) == (400, "invalid-path"), body
    # mkdir answers per item in the 26.09 dialect: all failed is 422
    status, body = await daemon.call(
        "POST", "/folder/file/mkdir", volume="vol1", vfid=vfid, relpath=long
    )
    assert (status, body["results"]["failed"][0]["code"]) == (422, "invalid-path"), body
    resp = await daemon.client.put(
        _files_url(vfid) + f"/files/{long}", data=b"x", headers=_bearer()
    )
    assert resp.status == 400, await resp.text()


async def test_signed_put_below_a_file_is_4xx(daemon: Daemon) -> None:
    data = b"payload"
    md5 = base64.b64encode(__import__("hashlib").md5(data).digest()).decode()
    daemon.ctx.dataproxy.client_url = str(daemon.client.make_url("/")).rstrip("/")
    for name in ("a", "a/b"):
        status, loc = await daemon.call(
            "POST",
            "/dataproxy/upload-location",
            project="p",
            domain="d",
            filename=name,
            filename_root="root",
            content_md5=md5,
        )
        assert status == 200, loc
        url = loc["signed_url"].split("/signed/", 1)[1]
        resp = await daemon.client.put(f"/signed/{url}", data=data, headers=loc["headers"])
        if name == "a":
            assert resp.status == 201
        else:
            assert_clean(resp.status, await resp.read(), "a/b")
            assert resp.status == 400


# -- anything at all -------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
MANAGER_ROUTES = [
    ("POST", "/folder/file/list"),
    ("POST", "/folder/file/mkdir"),
    ("POST", "/folder/file/move"),
    ("POST", "/folder/file/delete"),
    ("POST", "/folder/file/upload"),
    ("POST", "/folder/create"),
    ("GET", "/quota-scope"),
    ("PATCH", "/folder/quota"),
    ("POST", "/dataproxy/upload-location"),
    ("PUT", "/folder/acl"),
    # the routes of 26.09
    ("POST", "/folder/file/fetch"),
    ("POST", "/folder/file/delete-async"),
    ("POST", "/folder/file/archive-download-token"),
    ("GET", "/folder/metadata"),
    ("POST", "/folder/metadata"),
    ("GET", "/volume/performance-metric"),
    ("PATCH", "/volume/quota"),
]


@SETTINGS
@given(
    route=st.sampled_from(MANAGER_ROUTES),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "volume",
                "vfid",
                "relpath",
                "relpaths",
                "size",
                "src_relpath",
                "dst_relpath",
                "options",
                "expires_in",
                "content_md5",
                "entries",
                "owner",
                "limit_bytes",
                "qsid",
                "recursive",
                "virtual_folder_id",
                "files",
                "filename",
                "payload",
                "size_bytes",
            ]
        ),
        json_values,
    ),
)
async def test_manager_parsers_never_500(
    world: tuple[Daemon, str], route: tuple[str, str], fields: dict[str, Any]
) -> None:
    daemon, vfid = world
    body = {"volume": "vol1", "vfid": vfid, **fields}
    resp = await daemon.manager.request(route[0], route[1], data=json.dumps(body))
    assert_clean(resp.status, await resp.read(), (route, body))


@SETTINGS
@given(
    files=st.lists(st.text(max_size=30), min_size=1, max_size=3),
    filename=st.none() | st.text(max_size=20),
)
async def test_archive_downloads_never_500(
    world: tuple[Daemon, str], files: list[str], filename: str | None
) -> None:
    """Whatever paths an archive token names, its download is a zip or a 4xx."""
    daemon, vfid = world
    body = {"volume": "vol1", "virtual_folder_id": vfid, "files": files, "filename": filename}
    resp = await daemon.manager.post("/folder/file/archive-download-token", data=json.dumps(body))
    answer = await resp.read()
    assert_clean(resp.status, answer, body)
    if resp.status != 200:
        return
    resp = await daemon.client.get(
        "/download-archive", params={"token": json.loads(answer)["token"]}
    )
    assert_clean(resp.status, await resp.read() if resp.status >= 400 else b"", body)


header_values = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


@SETTINGS
@given(
    method=st.sampled_from(["PATCH", "HEAD", "POST", "DELETE"]),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Upload-Offset",
                "Upload-Length",
                "Upload-Metadata",
                "Upload-Checksum",
                "Upload-Defer-Length",
                "Upload-Concat",
                "Range",
                "Content-Type",
                "Authorization",
            ]
        ),
        header_values,
    ),
)
async def test_upload_door_never_500(
    world: tuple[Daemon, str], method: str, headers: dict[str, bytes]
) -> None:
    daemon, _ = world
    base = {"Tus-Resumable": b"1.0.0", **headers}
    path = "/upload" if method == "POST" else f"/upload/{uuid.uuid4().hex}"
    sends = method in ("PATCH", "POST")
    head = _head(method, path, base, 3 if sends else 0)
    status, body = await raw_request(daemon.client.port, head, b"abc" if sends else b"")
    assert status < 500, (method, headers, status, body[:300])


_concat_values = st.one_of(
    header_values,
    st.builds(
        lambda kind, urls: kind + b";" + b" ".join(urls),
        st.sampled_from([b"final", b"FINAL", b"partial", b"final ", b""]),
        st.lists(
            st.one_of(
                header_values,
                st.builds(
                    lambda h: b"/upload/" + h.encode(), st.text("0123456789abcdefg", max_size=34)
                ),
                st.just(b"http://evil.example/upload/" + b"0" * 32),
            ),
            max_size=4,
        ),
    ),
)


@SETTINGS
@given(concat=_concat_values, length=st.sampled_from([None, b"3", b"-1"]), body=st.booleans())
async def test_upload_concat_garbage_never_500(
    world: tuple[Daemon, str], concat: bytes, length: bytes | None, body: bool
) -> None:
    """Upload-Concat values past a valid user token and Upload-Metadata: a 4xx problem."""
    daemon, vfid = world
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("volume", "vol1"), ("vfid", vfid), ("path", "c.bin"))
    )
    headers = {
        "Tus-Resumable": b"1.0.0",
        "Upload-Concat": concat,
        "Upload-Metadata": meta.encode(),
        **_bearer_bytes(),
    }
    if length is not None:
        headers["Upload-Length"] = length
    if body:
        headers["Content-Type"] = b"application/offset+octet-stream"
    head = _head("POST", "/upload", headers, 3 if body else 0)
    status, answer = await raw_request(daemon.client.port, head, b"abc" if body else b"")
    assert status < 500, (concat, length, body, status, answer[:300])
    if all(0x20 <= c < 0x7F for c in concat):  # what the HTTP parser lets through reaches us
        assert_clean(status, answer, (concat, length, body))


def _bearer_bytes() -> dict[str, bytes]:
    return {k: v.encode() for k, v in _bearer().items()}


@SETTINGS
@given(raw=st.text(max_size=60), rng=st.text(max_size=30))
async def test_file_api_paths_and_ranges_never_500(
    world: tuple[Daemon, str], raw: str, rng: str
) -> None:
    daemon, vfid = world
    url = _files_url(vfid) + "/files/" + quote(raw.encode("utf-8", "surrogatepass"), safe="/")
    headers = {**_bearer()}
    if rng.isascii() and rng.isprintable():
        headers["Range"] = rng
    for method in ("GET", "PUT", "DELETE"):
        resp = await daemon.client.request(method, url, headers=headers, data=b"x")
        assert_clean(resp.status, await resp.read(), (method, raw, rng))


__all__ = ["MANAGER_SECRET"]
