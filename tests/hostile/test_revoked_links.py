"""A grantee whose right is revoked loses what she minted with it: download links (a file, or a
directory as a zip) stop working at once, including for files written after the revocation.
Links the manager mints stand on the manager's word and keep working."""

from __future__ import annotations

import io
import zipfile

import aiohttp
import pytest
from harness import TOKEN_SECRET, Tenant, user_token


async def _link(s: aiohttp.ClientSession, t: Tenant, token: str, path: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"path": path, "expires_in": "7d"}
    async with s.post(f"{t.files_url}/links", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        url = (await resp.json())["url"]
    return url if url.startswith("http") else t.daemon.client_url + url


@pytest.mark.hostile
async def test_a_revoked_grantee_loses_the_links_she_minted(plain_tenant: Tenant) -> None:
    t = plain_tenant
    (t.mount / "report.txt").write_bytes(b"quarterly numbers")
    eve = user_token(TOKEN_SECRET, "eve")
    grant = t.manager("POST", "/folder/acl/grant", {"principal": "user:eve", "permission": "ro"})
    assert grant.status == 200, grant
    async with aiohttp.ClientSession() as s:
        whole, one = await _link(s, t, eve, ""), await _link(s, t, eve, "report.txt")
        async with s.get(whole) as r:  # while she holds RO, both work
            assert r.status == 200
            assert "report.txt" in zipfile.ZipFile(io.BytesIO(await r.read())).namelist()
        async with s.get(one) as r:
            assert r.status == 200 and await r.read() == b"quarterly numbers"
        revoke = t.manager("POST", "/folder/acl/revoke", {"principal": "user:eve"})
        assert revoke.status == 200, revoke
        (t.mount / "written-after-revocation.txt").write_bytes(b"new secret")
        for url in (whole, one, whole + "&", one.replace("/download?", "/download?x=1&")):
            async with s.get(url) as r:
                body = await r.read()
                assert r.status in (403, 404), (url, r.status)
                assert b"secret" not in body and b"quarterly" not in body
            async with s.head(url) as r:
                assert r.status in (403, 404)


@pytest.mark.hostile
async def test_the_owners_links_and_the_managers_tokens_keep_working(plain_tenant: Tenant) -> None:
    t = plain_tenant
    (t.mount / "a.txt").write_bytes(b"kept")
    t.manager("POST", "/folder/acl/grant", {"principal": "user:eve", "permission": "ro"})
    t.manager("POST", "/folder/acl/revoke", {"principal": "user:eve"})
    minted = t.manager("POST", "/folder/file/download", {"relpath": "a.txt", "archive": False})
    assert minted.status == 200, minted
    async with aiohttp.ClientSession() as s:
        own = await _link(s, t, t.token, "a.txt")
        manager_url = f"{t.daemon.client_url}/download?token={minted.json()['token']}"
        for url in (own, manager_url):
            async with s.get(url) as r:
                assert r.status == 200 and await r.read() == b"kept"
