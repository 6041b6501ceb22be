"""A FlashBlade REST 2.x client: the calls the purestorage backend needs.

Followed: the FlashBlade REST API 2.x reference (OpenAPI ``flashblade-rest-api`` 2.26; the
``purity_fb`` / ``py-pure-client`` FlashBlade docs).

* ``GET /api/api_version`` (no auth) lists the versions the array speaks: ``{"versions": [...]}``.
* ``POST /api/login`` with the ``api-token`` header answers a session token in the
  ``x-auth-token`` response header; every other request carries it; a refused session (401)
  means "log in again".
* ``GET /api/2.x/file-systems`` answers ``{"items", "continuation_token", "total_item_count"}``,
  paged with ``limit`` + ``continuation_token`` (also sent as ``x-next-token``), narrowed with
  ``filter=name='…'`` and ``destroyed=false``.  ``POST``/``PATCH``/``DELETE`` take
  ``names=`` in the query.  A file system's hard limit is ``provisioned`` with
  ``hard_limit_enabled``; its logical usage ``space.virtual``.  A file system is destroyed
  (``PATCH destroyed=true``) before it can be eradicated (``DELETE``).
* ``GET /api/2.x/arrays/space``: ``items[0].capacity`` and ``items[0].space.total_physical``.
* Errors: ``{"errors": [{"context", "message"}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage_proxy.volumes.rest import (
    Page,
    RestClient,
    SessionAuth,
    number,
    obj,
    optional_number,
    token_pager,
)

PAGE_SIZE = 500


class PurityLogin(SessionAuth):
    """``POST /api/login`` with the API token; the session is the ``x-auth-token`` header."""

    def __init__(self, api_token: str) -> None:
        super().__init__(api_token)
        self._api_token = api_token

    async def login(self, client: RestClient) -> str:
        resp = await client.request(
            "POST",
            "/api/login",
            authenticate=False,
            expect_json=False,
            headers={"api-token": self._api_token},
            repeatable=True,
        )
        token = resp.headers.get("x-auth-token")
        if not token:
            raise client.malformed("a login answer without x-auth-token", "/api/login")
        return token

    def session_headers(self, token: str) -> dict[str, str]:
        return {"x-auth-token": token}


@dataclass(frozen=True, slots=True)
class FileSystem:
    name: str
    limit_bytes: int | None  # ``provisioned`` when ``hard_limit_enabled``
    used_bytes: int  # ``space.virtual``: logically written bytes
    destroyed: bool


class FlashBladeClient:
    def __init__(self, rest: RestClient, api_version: str = "") -> None:
        self.rest = rest
        self.api_version = api_version
        self.endpoint = rest.endpoint

    def _path(self, resource: str) -> str:
        return f"/api/{self.api_version}/{resource}"

    async def versions(self) -> list[str]:
        """The REST versions the array offers (asked without credentials)."""
        body = (await self.rest.request("GET", "/api/api_version", authenticate=False)).body
        found = body.get("versions") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise self.rest.malformed("no list of versions", "/api/api_version")
        return [str(v) for v in found]

    async def choose_version(self) -> str | None:
        """The configured version if offered (or the newest 2.x); None if there is none."""
        offered = await self.versions()
        if self.api_version:
            return self.api_version if self.api_version in offered else None
        twos = [v for v in offered if v.startswith("2.")]
        if not twos:
            return None
        self.api_version = max(twos, key=lambda v: tuple(int(p) for p in v.split(".")))
        return self.api_version

    # -- file systems ----------------------------------------------------------------------------
    def _parse(self, item: Any) -> FileSystem:
        name = item.get("name")
        if not isinstance(name, str):
            raise self.rest.malformed("a file system without a name", "file-systems")
        space = obj(item.get("space"))
        provisioned = optional_number(self.rest, item.get("provisioned") or None, "provisioned")
        limit = provisioned if item.get("hard_limit_enabled") and provisioned else None
        return FileSystem(
            name=name,
            limit_bytes=limit,
            used_bytes=number(self.rest, space.get("virtual", 0), "space.virtual"),
            destroyed=bool(item.get("destroyed")),
        )

    async def file_systems(self, name_glob: str) -> list[FileSystem]:
        """Every file system (not destroyed) whose name matches ``name_glob``, page by page."""
        first = Page(
            self._path("file-systems"),
            {"filter": f"name='{name_glob}'", "destroyed": False, "limit": PAGE_SIZE},
        )
        items = await self.rest.collect(
            first,
            items="items",
            next_page=token_pager(
                "continuation_token", "continuation_token", header="x-next-token"
            ),
        )
        return [self._parse(i) for i in items]

    async def file_system(self, name: str) -> FileSystem | None:
        """One file system by name, destroyed or not (``None`` when there is none)."""
        body = await self.rest.get(self._path("file-systems"), {"filter": f"name='{name}'"})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise self.rest.malformed("no list of items", "file-systems")
        found = [self._parse(i) for i in items if isinstance(i, dict)]
        return found[0] if found else None

    async def create_file_system(self, name: str, nfs_rules: str) -> None:
        body = {
            "provisioned": "",
            "hard_limit_enabled": False,
            "nfs": {"v3_enabled": True, "v4_1_enabled": True, "rules": nfs_rules},
        }
        await self.rest.request(
            "POST", self._path("file-systems"), params={"names": name}, json=body
        )

    async def set_limit(self, name: str, limit_bytes: int | None) -> None:
        """A hard limit, or none (unlimited); a limit under the usage is set all the same
        (``ignore_usage``: writes then fail until space is freed, as on every other backend)."""
        body: dict[str, Any] = {
            "provisioned": limit_bytes if limit_bytes else "",
            "hard_limit_enabled": bool(limit_bytes),
        }
        await self.rest.request(
            "PATCH",
            self._path("file-systems"),
            params={"names": name, "ignore_usage": True},
            json=body,
        )

    async def eradicate(self, name: str) -> None:
        """Destroy, then eradicate (the only way FlashBlade deletes a file system)."""
        path = self._path("file-systems")
        await self.rest.request("PATCH", path, params={"names": name}, json={"destroyed": True})
        await self.rest.request("DELETE", path, params={"names": name})

    async def array_space(self) -> tuple[int, int]:
        """``(capacity, physical bytes used)`` of the whole array."""
        body = await self.rest.get(self._path("arrays/space"))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise self.rest.malformed("no array space item", "arrays/space")
        item = items[0]
        space = obj(item.get("space"))
        return (
            number(self.rest, item.get("capacity"), "capacity"),
            number(self.rest, space.get("total_physical", 0), "space.total_physical"),
        )
