"""A VAST Management System (VMS) REST client: the calls the vast backend needs.

Followed: the VMS REST API (``/api/<version>/``, Django REST framework conventions) as VAST's own
CSI driver (``vast-data/vast-csi``: ``vms_session.py``, ``session/iterator.py``) and Backend.AI's
VAST backend use it.

* ``POST /api/<v>/token/`` ``{"username", "password"}`` -> ``{"access", "refresh"}``; requests
  carry ``Authorization: Bearer <access>``; a refused token is a 401, or a 403 saying "Token is
  invalid or expired"; ``POST /api/<v>/token/refresh/`` ``{"refresh"}`` renews it.  An API token
  (``Authorization: Api-Token <t>``) may be used instead.
* Lists are plain JSON arrays, or, with ``page_size``, pages ``{"count", "next", "previous",
  "results"}`` whose ``next`` is the absolute URL of the following page.
* ``/api/<v>/quotas/``: ``GET`` filtered by ``path`` / ``path__contains``; ``POST``
  ``{"name", "path", "hard_limit", "create_dir"}`` -> 201 and the quota; ``PATCH`` and
  ``DELETE`` on ``quotas/<id>/``.  A quota reports ``hard_limit`` and ``used_capacity``.
* ``GET /api/<v>/views/`` (the exported paths), ``GET /api/<v>/clusters/`` (capacity).
* Errors: ``{"detail": "..."}`` or field errors ``{"<field>": ["..."]}``; VMS answers some
  refusals with 503 (a quota that already exists), so a 503 is not taken as "retry".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage_proxy.volumes.rest import (
    ErrorInfo,
    Page,
    RestAuthError,
    RestClient,
    RestNotFound,
    SessionAuth,
    link_pager,
    number,
    obj,
    optional_number,
)

PAGE_SIZE = 1000
EXPIRED = "Token is invalid or expired"


def vast_error_body(body: Any) -> ErrorInfo:
    """``{"detail": ...}`` (with ``code``), or DRF field errors ``{"field": ["msg", ...]}``."""
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            code = body.get("code")
            return body["detail"], None if code is None else str(code), None
        for key, value in body.items():
            if isinstance(value, list) and value:
                return str(value[0]), None, key
    if isinstance(body, str):
        return body, None, None
    return "", None, None


class VastLogin(SessionAuth):
    """JWT access tokens from ``token/``, renewed with the refresh token (or a new login)."""

    def __init__(self, api_version: str, user: str, password: str) -> None:
        super().__init__(password)
        self._base = f"/api/{api_version}"
        self._creds = {"username": user, "password": password}
        self._refresh: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return super().secrets + ((self._refresh,) if self._refresh else ())

    def session_expired(self, status: int, body: Any) -> bool:
        return status == 401 or (status == 403 and EXPIRED in str(body))

    async def login(self, client: RestClient) -> str:
        if self._refresh:
            try:
                return await self._token(client, "/token/refresh/", {"refresh": self._refresh})
            except RestAuthError:
                self._refresh = None
        return await self._token(client, "/token/", self._creds)

    async def _token(self, client: RestClient, path: str, body: dict[str, str]) -> str:
        resp = await client.request(
            "POST", self._base + path, json=body, authenticate=False, repeatable=True
        )
        tokens = obj(resp.body)
        if not isinstance(tokens.get("access"), str):
            raise client.malformed("a token answer without access", path)
        if isinstance(tokens.get("refresh"), str):
            self._refresh = tokens["refresh"]
        return str(tokens["access"])

    def session_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def forget(self) -> None:
        super().forget()
        self._refresh = None


def _results(body: Any) -> Any:
    """A page's items: the ``results`` of a page, or the whole answer when it is a list."""
    return body if isinstance(body, list) else obj(body).get("results")


def _next(body: Any) -> Any:
    return obj(body).get("next")


@dataclass(frozen=True, slots=True)
class VastQuota:
    id: str
    path: str
    hard_limit: int | None
    used_bytes: int


class VastClient:
    def __init__(self, rest: RestClient, api_version: str = "v1") -> None:
        self.rest = rest
        self.endpoint = rest.endpoint
        self._base = f"/api/{api_version}"

    async def listing(
        self, resource: str, params: dict[str, str | int | bool]
    ) -> list[dict[str, Any]]:
        first = Page(f"{self._base}/{resource}/", {**params, "page_size": PAGE_SIZE})
        return await self.rest.collect(first, items=_results, next_page=link_pager(_next))

    async def clusters(self) -> list[dict[str, Any]]:
        return await self.listing("clusters", {})

    async def view_paths(self) -> list[str]:
        return [str(v.get("path")) for v in await self.listing("views", {})]

    def _parse(self, item: dict[str, Any]) -> VastQuota:
        if item.get("id") is None or not isinstance(item.get("path"), str):
            raise self.rest.malformed("a quota without id or path", "quotas")
        hard = optional_number(self.rest, item.get("hard_limit"), "hard_limit")
        return VastQuota(
            id=str(item["id"]),
            path=item["path"],
            hard_limit=hard or None,
            used_bytes=number(self.rest, item.get("used_capacity", 0), "used_capacity"),
        )

    async def quotas_under(self, base: str) -> list[VastQuota]:
        """Every quota whose path is below ``base``, page by page."""
        found = await self.listing("quotas", {"path__contains": base})
        return [self._parse(q) for q in found if str(q.get("path", "")).startswith(base + "/")]

    async def create_quota(self, name: str, path: str, hard_limit: int | None) -> None:
        body = {"name": name, "path": path, "hard_limit": hard_limit, "create_dir": False}
        await self.rest.request("POST", f"{self._base}/quotas/", json=body)

    async def set_hard_limit(self, quota_id: str, hard_limit: int | None) -> None:
        body = {"hard_limit": hard_limit}
        await self.rest.request("PATCH", f"{self._base}/quotas/{quota_id}/", json=body)

    async def delete_quota(self, quota_id: str) -> None:
        try:
            await self.rest.request("DELETE", f"{self._base}/quotas/{quota_id}/")
        except RestNotFound:
            pass
