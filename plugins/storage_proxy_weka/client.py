"""A WEKA REST API v2 client: the calls the weka backend needs.

Followed: the WEKA REST API v2 (``/api/v2``, documented at docs.weka.io "WEKA REST API" and its
Swagger), and how WEKA's own CSI driver (``weka/csi-wekafs``, ``pkg/wekafs/apiclient``) uses it.

* Every answer is ``{"data": ...}``; errors are ``{"message": ...}``.
* ``POST /api/v2/login`` ``{"username", "password", "org"}`` -> ``data.access_token`` (a bearer
  token), ``data.refresh_token``, ``data.expires_in``; ``POST /api/v2/login/refresh``
  ``{"refresh_token"}`` renews it.  A refused token is a 401.
* ``GET /api/v2/fileSystems`` -> ``data: [{"uid", "name", "total_budget", "used_total", ...}]``.
* ``GET /api/v2/fileSystems/<uid>/resolvePath?path=/dir`` -> ``data.inode_id``.
* ``/api/v2/fileSystems/<uid>/quota``: ``GET`` lists the directory quotas
  (``[{"inode_id", "hard_limit_bytes", "soft_limit_bytes", "total_bytes", "status"}]``, a
  ``next_token`` beside ``data`` while pages remain, asked for with ``next_token=``);
  ``PUT .../quota/<inode_id>`` ``{"hard_limit_bytes", "soft_limit_bytes", "grace_seconds"}``
  sets one, ``DELETE .../quota/<inode_id>`` removes it ("Directory has no quota" when there is
  none).  A quota counts once its status is ``ACTIVE``; the largest int64 means "unlimited".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage_proxy.volumes.rest import (
    Page,
    RestAuthError,
    RestClient,
    RestError,
    SessionAuth,
    number,
    obj,
    optional_number,
    token_pager,
)

API = "/api/v2"
#: What WEKA takes as "no limit" (the CSI driver's MaxQuotaSize).
UNLIMITED = 2**63 - 1
NO_QUOTA = "Directory has no quota"


def data(client: RestClient, body: Any, what: str) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise client.malformed("an answer without its data envelope", what)
    return body["data"]


class WekaLogin(SessionAuth):
    """Bearer tokens from ``/login``, renewed with the refresh token (a full login if refused)."""

    def __init__(self, user: str, password: str, org: str) -> None:
        super().__init__(password)
        self._creds = {"username": user, "password": password, "org": org}
        self._refresh: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return super().secrets + ((self._refresh,) if self._refresh else ())

    async def login(self, client: RestClient) -> str:
        if self._refresh:
            try:
                return await self._tokens(
                    client, "/login/refresh", {"refresh_token": self._refresh}
                )
            except RestAuthError:
                self._refresh = None
        return await self._tokens(client, "/login", self._creds)

    async def _tokens(self, client: RestClient, path: str, body: dict[str, str]) -> str:
        resp = await client.request(
            "POST", API + path, json=body, authenticate=False, repeatable=True
        )
        tokens = obj(data(client, resp.body, path))
        if not isinstance(tokens.get("access_token"), str):
            raise client.malformed("a login answer without access_token", path)
        refresh = tokens.get("refresh_token")
        self._refresh = refresh if isinstance(refresh, str) else None
        return str(tokens["access_token"])

    def session_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def forget(self) -> None:
        super().forget()
        self._refresh = None


@dataclass(frozen=True, slots=True)
class DirectoryQuota:
    inode_id: int
    hard_limit: int | None
    used_bytes: int | None  # None until the quota is ACTIVE (usage counted)


class WekaClient:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        self.endpoint = rest.endpoint

    async def file_systems(self) -> list[dict[str, Any]]:
        found = data(self.rest, await self.rest.get(API + "/fileSystems"), "/fileSystems")
        if not isinstance(found, list):
            raise self.rest.malformed("no list of file systems", "/fileSystems")
        return [obj(fs) for fs in found]

    async def file_system(self, uid: str) -> dict[str, Any]:
        return obj(data(self.rest, await self.rest.get(f"{API}/fileSystems/{uid}"), "fileSystem"))

    async def resolve(self, fs_uid: str, path: str) -> int | None:
        """The inode id of ``path`` (from the file system's root), None if there is none."""
        try:
            body = await self.rest.get(f"{API}/fileSystems/{fs_uid}/resolvePath", {"path": path})
        except RestError as e:
            if e.http_status == 404:
                return None
            raise
        found = obj(data(self.rest, body, "resolvePath")).get("inode_id")
        return number(self.rest, found, "inode_id")

    def _parse(self, item: dict[str, Any]) -> DirectoryQuota:
        hard = optional_number(self.rest, item.get("hard_limit_bytes"), "hard_limit_bytes")
        used = item.get("total_bytes", item.get("used_bytes"))
        return DirectoryQuota(
            inode_id=number(self.rest, item.get("inode_id"), "inode_id"),
            hard_limit=None if hard is None or hard >= UNLIMITED or hard <= 0 else hard,
            used_bytes=(
                optional_number(self.rest, used, "total_bytes")
                if item.get("status", "ACTIVE") == "ACTIVE"
                else None
            ),
        )

    async def quotas(self, fs_uid: str) -> list[DirectoryQuota]:
        """Every directory quota of the file system, page by page."""
        items = await self.rest.collect(
            Page(f"{API}/fileSystems/{fs_uid}/quota"),
            items="data",
            next_page=token_pager("next_token", "next_token"),
        )
        return [self._parse(i) for i in items]

    async def set_quota(self, fs_uid: str, inode_id: int, hard_limit: int | None) -> None:
        limit = hard_limit or UNLIMITED
        body = {"hard_limit_bytes": limit, "soft_limit_bytes": limit, "grace_seconds": 0}
        await self.rest.request("PUT", f"{API}/fileSystems/{fs_uid}/quota/{inode_id}", json=body)

    async def delete_quota(self, fs_uid: str, inode_id: int) -> None:
        try:
            await self.rest.request("DELETE", f"{API}/fileSystems/{fs_uid}/quota/{inode_id}")
        except RestError as e:
            if e.http_status != 404 and NO_QUOTA not in str(e):
                raise
