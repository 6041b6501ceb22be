"""Snapshot policies through both doors: set, read and clear on the manager API (a vfolder's or a
quota scope's) and on the file API (RO reads, RW changes), malformed policies refused with a
stable code, the ``auto-`` names kept for policies, and each change audited."""

from __future__ import annotations

import pytest
from api_fixtures import Daemon
from test_file_api import BASE, OWNER_QS, VFID, shared, status_of, token  # noqa: F401
from test_snapshots_api import audited

pytestmark = pytest.mark.usefixtures("shared")
VF = {"volume": "vol1", "vfid": VFID}
POLICY = f"{BASE}/snapshot-policy"


async def test_manager_sets_reads_and_clears_policies(shared: Daemon) -> None:  # noqa: F811
    d = shared
    status, view = await d.call("GET", "/folder/snapshot/policy", **VF)
    assert status == 200
    assert view == {"policy": None, "scope_policy": None, "effective": None, "source": None}
    status, _ = await d.call(
        "PUT", "/folder/snapshot/policy", **VF, every="1h", keep_last=24, keep_daily=7
    )
    assert status == 204
    scope = {"volume": "vol1", "qsid": OWNER_QS}
    status, _ = await d.call("PUT", "/folder/snapshot/policy", **scope, every="1d", keep_daily=3)
    assert status == 204
    status, view = await d.call("GET", "/folder/snapshot/policy", **VF)
    own = {"every": 3600, "keep_last": 24, "keep_daily": 7}
    assert view == {
        "policy": own,
        "scope_policy": {"every": 86400, "keep_last": 0, "keep_daily": 3},
        "effective": own,
        "source": "vfolder",
    }
    status, of_scope = await d.call("GET", "/folder/snapshot/policy", **scope)
    assert (
        status == 200 and of_scope["source"] == "quota-scope" and of_scope["scope_policy"] is None
    )
    status, _ = await d.call("DELETE", "/folder/snapshot/policy", **VF)
    assert status == 204
    status, view = await d.call("GET", "/folder/snapshot/policy", **VF)
    assert view["source"] == "quota-scope" and view["effective"]["every"] == 86400
    await audited(d, "snapshot-policy.set", "snapshot-policy.clear")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"every": "1h"}, "invalid-parameter"),  # keeps nothing
        ({"every": "1.5s", "keep_last": 1}, "invalid-parameter"),
        ({"every": "0s", "keep_last": 1}, "invalid-parameter"),
        ({"every": "soon", "keep_last": 1}, "invalid-parameter"),
        ({"every": "1h", "keep_last": -1}, "invalid-parameter"),
        ({"every": "1h", "keep_last": 1001}, "invalid-parameter"),
        ({"every": "1h", "keep_last": 1, "qsid": OWNER_QS}, "invalid-parameter"),  # both
    ],
)
async def test_malformed_policies_are_refused(
    shared: Daemon,  # noqa: F811
    body: dict[str, object],
    code: str,
) -> None:
    status, problem = await shared.call("PUT", "/folder/snapshot/policy", **VF, **body)
    assert status == 400 and problem["code"] == code, problem
    status, problem = await shared.call("GET", "/folder/snapshot/policy", volume="vol1")
    assert status == 400  # neither a vfolder nor a scope


async def test_policy_names_are_not_for_manual_snapshots(shared: Daemon) -> None:  # noqa: F811
    status, problem = await shared.call(
        "POST", "/folder/snapshot", **VF, name="auto-20260101T000000Z"
    )
    assert status == 400 and problem["code"] == "invalid-parameter"
    resp = await shared.client.post(
        f"{BASE}/snapshots", json={"name": "auto-x"}, headers=token(shared, "alice")
    )
    assert resp.status == 400


@pytest.mark.parametrize(
    ("user", "read", "change"),
    [("alice", 200, 204), ("bob", 200, 403), ("carol", 200, 204), ("mallory", 404, 404)],
)
async def test_rights_on_the_file_api(
    shared: Daemon,  # noqa: F811
    user: str,
    read: int,
    change: int,
) -> None:
    d = shared
    body = {"every": "30m", "keep_last": 4}
    assert await status_of(d, "PUT", POLICY, user, json=body) == change
    assert await status_of(d, "GET", POLICY, user) == read
    if change == 204:
        resp = await d.client.get(POLICY, headers=token(d, user))
        view = await resp.json()
        assert view["policy"] == {"every": 1800, "keep_last": 4, "keep_daily": 0}
    assert await status_of(d, "DELETE", POLICY, user) == change
    bad = await status_of(d, "PUT", POLICY, "alice", json={"every": "30m"})
    assert bad == 400


async def test_a_users_token_cannot_reach_a_scopes_policy(shared: Daemon) -> None:  # noqa: F811
    from storage_proxy.core.errors import PermissionDenied
    from storage_proxy.core.types import QuotaScopeID
    from storage_proxy.services.access import Actor
    from storage_proxy.services.tokens import UserClaims

    alice = Actor.for_user(UserClaims("alice"))
    with pytest.raises(PermissionDenied):
        await shared.ctx.services.snapshot_policies.get(alice, "vol1", QuotaScopeID.parse(OWNER_QS))
