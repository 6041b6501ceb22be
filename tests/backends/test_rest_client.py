"""The shared vendor REST client (``storage_proxy.volumes.rest``) against real aiohttp servers.

Each test serves a small app on 127.0.0.1 that misbehaves the way a vendor endpoint can (5xx,
hangs, garbage, expired sessions, echoed credentials, links elsewhere, self-signed TLS) and
checks the client's answer: retried where safe, a clear error otherwise, never a hang, never a
credential in a message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from backends.tls import self_signed

from storage_proxy.volumes.rest import (
    BasicAuth,
    Page,
    RestAuthError,
    RestClient,
    RestError,
    RestMalformed,
    RestNotFound,
    RestRejected,
    RestUnreachable,
    SessionAuth,
    link_pager,
    number,
    token_pager,
)

PASSWORD = "pw-Zq81-never-printed"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(routes: dict[tuple[str, str], Handler], **site: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, **site).start()
    scheme = "https" if site.get("ssl_context") else "http"
    return runner, f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def servers() -> AsyncIterator[list[web.AppRunner]]:
    started: list[web.AppRunner] = []
    yield started
    for runner in started:
        await runner.cleanup()


async def start(
    servers: list[web.AppRunner], routes: dict[tuple[str, str], Handler], **kw: Any
) -> str:
    runner, endpoint = await serve(routes, **kw)
    servers.append(runner)
    return endpoint


def client(endpoint: str, **kw: Any) -> RestClient:
    kw.setdefault("backoff", 0.01)
    return RestClient("Vendor", endpoint, BasicAuth("admin", PASSWORD), **kw)


async def test_basic_auth_and_json(servers: list[web.AppRunner]) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {"auth": request.headers.get("Authorization"), "q": dict(request.query)}
        )

    endpoint = await start(servers, {("GET", "/api/x"): handler})
    c = client(endpoint)
    body = await c.get("/api/x", {"flag": True, "n": 3})
    await c.close()
    assert body["auth"].startswith("Basic ") and body["q"] == {"flag": "true", "n": "3"}


async def test_5xx_is_retried_with_backoff_where_a_repeat_is_safe(
    servers: list[web.AppRunner],
) -> None:
    seen: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append(request.method)
        if len([m for m in seen if m == request.method]) < 3:
            return web.json_response({"message": "busy"}, status=503)
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        seen.append("POST500")
        return web.json_response({"message": "internal"}, status=500)

    endpoint = await start(
        servers, {("GET", "/r"): flaky, ("POST", "/r"): flaky, ("POST", "/b"): broken}
    )
    c = client(endpoint, retries=3)
    t0 = time.monotonic()
    assert (await c.request("GET", "/r")).body == {"ok": True}
    assert time.monotonic() - t0 >= 0.01 + 0.02  # backoff doubled between attempts
    assert (await c.request("POST", "/r")).body == {"ok": True}  # 503: not applied, retried
    with pytest.raises(RestError) as err:
        await c.request("POST", "/b")  # a POST that failed with 500 may have been applied
    await c.close()
    assert seen.count("GET") == 3 and seen.count("POST") == 3 and seen.count("POST500") == 1
    assert err.value.http_status == 500 and "internal" in err.value.detail


async def test_statuses_become_errors_by_meaning(servers: list[web.AppRunner]) -> None:
    def answer(status: int) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(
                {"errors": [{"message": f"said {status}", "code": "E"}]}, status=status
            )

        return handler

    endpoint = await start(
        servers, {("GET", f"/{s}"): answer(s) for s in (400, 401, 403, 404, 409)}
    )
    c = client(endpoint)
    kinds = {400: RestRejected, 401: RestAuthError, 403: RestAuthError, 404: RestNotFound}
    for status, kind in {**kinds, 409: RestRejected}.items():
        with pytest.raises(kind, match=f"answered {status} to GET /{status}: said {status}"):
            await c.get(f"/{status}")
    await c.close()


async def test_a_hanging_endpoint_times_out(servers: list[web.AppRunner]) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    endpoint = await start(servers, {("GET", "/slow"): hang})
    c = client(endpoint, request_timeout=0.3, retries=1)
    t0 = time.monotonic()
    with pytest.raises(RestUnreachable, match="no answer within the timeout"):
        await c.get("/slow")
    await c.close()
    assert time.monotonic() - t0 < 5


async def test_a_refused_connection_is_unreachable_and_a_post_is_not_repeated(
    servers: list[web.AppRunner],
) -> None:
    hits: list[int] = []

    async def drop(request: web.Request) -> web.Response:
        hits.append(1)
        assert request.transport is not None
        request.transport.close()  # the connection dies before an answer
        await asyncio.sleep(1)
        raise AssertionError("unreachable")

    endpoint = await start(servers, {("POST", "/p"): drop})
    c = client(endpoint, retries=3)
    with pytest.raises(RestUnreachable):
        await c.request("POST", "/p", json={})
    await c.close()
    assert hits == [1]
    closed = client("http://127.0.0.1:9", retries=0)  # discard port: nothing listens
    with pytest.raises(RestUnreachable, match="unreachable for GET /x"):
        await closed.get("/x")
    await closed.close()


async def test_an_answer_that_is_not_json_is_malformed(servers: list[web.AppRunner]) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>")

    endpoint = await start(servers, {("GET", "/h"): html})
    c = client(endpoint)
    with pytest.raises(RestMalformed, match="not JSON"):
        await c.get("/h")
    assert number(c, "12", "n") == 12
    with pytest.raises(RestMalformed, match="not a number"):
        number(c, "twelve", "n")
    await c.close()


class CountingLogin(SessionAuth):
    def __init__(self) -> None:
        super().__init__(PASSWORD)
        self.logins = 0

    async def login(self, client: RestClient) -> str:
        resp = await client.request("POST", "/login", json={"pw": PASSWORD}, authenticate=False)
        self.logins += 1
        return str(resp.body["token"])

    def session_headers(self, token: str) -> dict[str, str]:
        return {"x-session": token}


async def test_an_expired_session_is_renewed_once(servers: list[web.AppRunner]) -> None:
    valid: set[str] = set()
    state = {"accept_logins": True, "n": 0}

    async def login(request: web.Request) -> web.Response:
        if not state["accept_logins"]:
            return web.json_response({"message": "bad password"}, status=401)
        state["n"] += 1
        token = f"session-{state['n']}-abcdef"
        valid.add(token)
        return web.json_response({"token": token})

    async def data(request: web.Request) -> web.Response:
        if request.headers.get("x-session") not in valid:
            return web.json_response({"message": "session expired"}, status=401)
        return web.json_response({"ok": True})

    endpoint = await start(servers, {("POST", "/login"): login, ("GET", "/d"): data})
    auth = CountingLogin()
    c = RestClient("Vendor", endpoint, auth, backoff=0.01)
    assert await c.get("/d") == {"ok": True}
    valid.clear()  # the array forgot every session
    assert await c.get("/d") == {"ok": True}
    assert auth.logins == 2
    valid.clear()
    state["accept_logins"] = False
    with pytest.raises(RestAuthError, match="401"):
        await c.get("/d")
    await c.close()
    assert auth.logins == 2


async def test_credentials_never_appear_in_messages_or_logs(
    servers: list[web.AppRunner], caplog: pytest.LogCaptureFixture
) -> None:
    async def echo(request: web.Request) -> web.Response:
        said = f"bad header {request.headers.get('Authorization')} for password {PASSWORD}"
        status = 503 if request.path == "/busy" else 400
        return web.json_response({"message": said}, status=status)

    endpoint = await start(servers, {("GET", "/busy"): echo, ("GET", "/bad"): echo})
    caplog.set_level(logging.DEBUG)
    c = client(endpoint, retries=2)
    messages = []
    for path in ("/busy", "/bad"):
        with pytest.raises(RestError) as err:
            await c.get(path)
        messages.append(str(err.value))
    await c.close()
    basic = BasicAuth("admin", PASSWORD).secrets[1]
    for text in [*messages, caplog.text]:
        assert PASSWORD not in text and basic not in text
    assert "***" in messages[1] and "retrying" in caplog.text


async def test_next_page_links_stay_on_the_endpoint(servers: list[web.AppRunner]) -> None:
    elsewhere_hits: list[int] = []

    async def other(request: web.Request) -> web.Response:
        elsewhere_hits.append(1)
        return web.json_response({"results": []})

    other_endpoint = await start(servers, {("GET", "/api/v1/items/"): other})

    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", 1))
        if page == 1:
            nxt = str(request.url.update_query(page=2))
            return web.json_response({"results": [{"i": 1}], "next": nxt})
        if page == 2:
            return web.json_response(
                {"results": [{"i": 2}], "next": f"{other_endpoint}/api/v1/items/"}
            )
        raise AssertionError("no third page")

    endpoint = await start(servers, {("GET", "/api/v1/items/"): items})
    c = client(endpoint)
    pager = link_pager(lambda body: body.get("next"))
    with pytest.raises(RestMalformed, match="another host"):
        await c.collect(Page("/api/v1/items/"), items="results", next_page=pager)
    await c.close()
    assert elsewhere_hits == []


async def test_token_paging_follows_and_a_repeated_token_is_malformed(
    servers: list[web.AppRunner],
) -> None:
    async def pages(request: web.Request) -> web.Response:
        token = request.query.get("resume")
        if request.path == "/loop":
            return web.json_response({"quotas": [{"n": 0}], "resume": "same"})
        if token is None:
            assert request.query.get("limit") == "2"
            return web.json_response({"quotas": [{"n": 1}, {"n": 2}], "resume": "t2"})
        assert dict(request.query) == {"resume": "t2"}  # alone, as OneFS wants it
        return web.json_response({"quotas": [{"n": 3}], "resume": None})

    endpoint = await start(servers, {("GET", "/q"): pages, ("GET", "/loop"): pages})
    c = client(endpoint)
    pager = token_pager("resume", "resume", keep_params=False)
    found = await c.collect(Page("/q", {"limit": 2}), items="quotas", next_page=pager)
    assert [i["n"] for i in found] == [1, 2, 3]
    again = token_pager("resume", "resume")
    with pytest.raises(RestMalformed, match="same continuation token twice"):
        await c.collect(Page("/loop"), items="quotas", next_page=again)
    await c.close()


async def test_tls_is_verified_unless_switched_off(
    servers: list[web.AppRunner], tmp_path: Path
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    cert, ctx = self_signed(tmp_path)
    endpoint = await start(servers, {("GET", "/x"): ok}, ssl_context=ctx)
    strict = client(endpoint, retries=0)  # verify-ssl: on by default
    with pytest.raises(RestUnreachable, match="certificate"):
        await strict.get("/x")
    await strict.close()
    for c in (client(endpoint, ca_file=str(cert)), client(endpoint, verify_ssl=False)):
        assert await c.get("/x") == {"ok": True}
        await c.close()


def test_an_endpoint_must_be_http_and_loses_its_userinfo() -> None:
    with pytest.raises(ValueError, match="http"):
        client("ftp://host")
    c = client(f"https://admin:{PASSWORD}@array.example:8080/")
    assert c.endpoint == "https://array.example:8080" and PASSWORD not in c.endpoint
