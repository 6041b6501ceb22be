"""User tokens a newcomer can get: ``POST /token`` on the manager API and ``storage-proxy token
issue`` on the node, one minting rule, a lifetime capped by config."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from api_fixtures import Daemon, make_config
from click.testing import CliRunner

from storage_proxy.cli import main
from storage_proxy.context import build_root_context
from storage_proxy.services.hs256 import HS256
from storage_proxy.services.tokens import UserClaims

VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"
GROUP_VFID = "project:99999999-2222-3333-4444-555555555555/0123456789abcdef0123456789abcdef"


async def test_minted_token_opens_the_file_api(daemon: Daemon) -> None:
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID, owner="alice")
    await daemon.call(
        "POST", "/folder/create", volume="vol1", vfid=GROUP_VFID, owner="ml", kind="group"
    )
    status, body = await daemon.call("POST", "/token", user="alice", groups=["ml"])
    assert status == 200
    assert body["ui_url"].endswith(f"/ui/#token={body['token']}")
    claims = HS256(daemon.ctx.token_secret.value).decode(body["token"])
    assert claims["sub"] == "alice" and claims["groups"] == ["ml"]
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert claims["exp"] == expires and 3590 < expires - time.time() <= 3600  # default 1h
    resp = await daemon.client.get(
        "/api/v1/vfolders", headers={"Authorization": f"Bearer {body['token']}"}
    )
    seen = {(v["vfid"], v["permission"]) for v in (await resp.json())["vfolders"]}
    assert seen == {(VFID, "rwd"), (GROUP_VFID, "rw")}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"user": "alice", "expires_in": "30d"}, "user-token-max-expire"),
        ({"user": "alice", "expires_in": 0}, "positive"),
        ({"user": "alice", "expires_in": "soon"}, "expires_in"),
        ({"user": "al ice"}, "user"),
        ({"user": "user:alice"}, "user"),
        ({"user": ""}, "user"),
        ({"groups": ["ml"]}, "user"),
        ({"user": "alice", "groups": ["a b"]}, "group"),
        ({"user": "alice", "groups": "ml"}, "groups"),
    ],
)
async def test_bad_requests_are_400(daemon: Daemon, body: dict[str, object], needle: str) -> None:
    status, problem = await daemon.call("POST", "/token", **body)
    assert status == 400 and problem["code"] == "invalid-parameter"
    assert needle in json.dumps(problem)


async def test_token_route_needs_the_manager_secret(daemon: Daemon) -> None:
    resp = await daemon.manager.post(
        "/token", json={"user": "alice"}, headers={"X-BackendAI-Storage-Auth-Token": "wrong"}
    )
    assert resp.status == 403


async def test_lifetime_follows_config(daemon: Daemon) -> None:
    status, body = await daemon.call("POST", "/token", user="alice", expires_in="7d")
    assert status == 200  # the default cap is 7 days
    exp = HS256(daemon.ctx.token_secret.value).decode(body["token"])["exp"]
    assert 7 * 86400 - 10 < exp - time.time() <= 7 * 86400


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "sp.toml"
    path.write_text(
        f'[storage-proxy]\ndata-dir = "{tmp_path / "data"}"\n{extra}\n'
        '[api.client]\nservice-addr = "127.0.0.1:16021"\n'
    )
    return path


def test_cli_token_issue_signs_with_the_daemons_secret(tmp_path: Path) -> None:
    config = _config(tmp_path, 'user-token-expire = "10m"')
    runner = CliRunner()
    result = runner.invoke(
        main, ["token", "issue", "--user", "bob", "--group", "ml", "-f", str(config)]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert (tmp_path / "data" / "token-secret").exists()  # made as the daemon would make it
    # the daemon started later on the same config accepts it
    cfg = make_config(tmp_path)
    cfg["storage-proxy"]["secret"] = None

    async def verify() -> UserClaims:
        ctx = await build_root_context(cfg)
        try:
            return ctx.tokens.verify_user(token)
        finally:
            await ctx.close()

    user = asyncio.run(verify())
    assert user.sub == "bob" and user.groups == ("ml",)
    claims = HS256((tmp_path / "data" / "token-secret").read_text().strip()).decode(token)
    assert 590 < claims["exp"] - time.time() <= 600
    link = runner.invoke(main, ["token", "issue", "--user", "bob", "--link", "-f", str(config)])
    assert link.stdout.startswith("http://127.0.0.1:16021/ui/#token=eyJ")
    as_json = runner.invoke(main, ["token", "issue", "--user", "bob", "--json", "-f", str(config)])
    assert set(json.loads(as_json.stdout)) == {"token", "expires_at", "ui_url"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--expires-in", "30d"], "user-token-max-expire"),
        (["--expires-in", "never"], "not a duration"),
        (["--group", "a:b"], "group"),
    ],
)
def test_cli_token_issue_refuses_bad_input(tmp_path: Path, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(
        main, ["token", "issue", "--user", "bob", *args, "-f", str(_config(tmp_path))]
    )
    assert result.exit_code == 2 and needle in result.output
