"""A PowerScale OneFS Platform API client: the calls the dellemc-onefs backend needs.

Followed: the OneFS Platform API reference as published with Dell's ``isilon_sdk`` (9.x
``QuotaApi``, ``ClusterApi``, ``NamespaceApi`` docs) and the OneFS API reference guide.

* HTTP basic authentication on every request (port 8080).
* ``GET /platform/3/cluster/config`` -> ``{"name", "onefs_version": {"release"}, ...}``.
* ``GET /platform/5/quota/license`` -> the SmartQuotas license ``{"name", "status"}``
  (``Activated``/``Evaluation`` let quotas work).
* ``/platform/<v>/quota/quotas``: ``GET`` filtered by ``path``, ``type``,
  ``recurse_path_children`` and paged with ``limit``; the answer is ``{"quotas", "resume"}`` and
  the next page is asked with ``resume=<token>`` alone ("resume cannot be used with other
  options").  ``POST`` ``{"path", "type": "directory", "include_snapshots", "enforced",
  "thresholds": {"hard"}, "thresholds_on"}`` answers ``201 {"id"}``; ``PUT`` and ``DELETE`` on
  ``quota/quotas/<id>`` answer 204.  Usage is ``usage.fslogical`` (bytes as the filesystem sees
  them, without protection overhead); a child quota's threshold may not exceed an enclosing
  quota's unless ``ignore_limit_checks``.
* ``HEAD /namespace/<path below />`` (RAN): 200 if the directory exists, 404 if not.
* ``GET /platform/1/cluster/statfs`` -> ``f_blocks``, ``f_bfree``, ``f_bsize``.
* Errors: ``{"errors": [{"code": "AEC_NOT_FOUND", "message": "..."}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage_proxy.volumes.rest import (
    Page,
    RestClient,
    RestNotFound,
    number,
    obj,
    optional_number,
    token_pager,
)

PAGE_SIZE = 1000
LICENSED = ("Activated", "Evaluation")


@dataclass(frozen=True, slots=True)
class DirectoryQuota:
    id: str
    path: str
    hard_limit: int | None  # None: an accounting quota (no enforced hard threshold)
    used_bytes: int | None  # ``usage.fslogical``; None while a QuotaScan has not finished


class OneFSClient:
    def __init__(self, rest: RestClient, api_version: str = "12") -> None:
        self.rest = rest
        self.endpoint = rest.endpoint
        self._quotas = f"/platform/{api_version}/quota/quotas"

    # -- cluster ---------------------------------------------------------------------------------
    async def cluster_name(self) -> str:
        body = await self.rest.get("/platform/3/cluster/config")
        return str(obj(body).get("name", ""))

    async def quota_license(self) -> str:
        """The SmartQuotas license status (``Activated``, ``Evaluation``, ``Expired``, ...)."""
        body = obj(await self.rest.get("/platform/5/quota/license"))
        if isinstance(body.get("licenses"), list) and body["licenses"]:
            body = obj(body["licenses"][0])
        return str(body.get("status", "Unknown"))

    async def directory_exists(self, ifs_path: str) -> bool:
        try:
            await self.rest.request("HEAD", f"/namespace{ifs_path}", expect_json=False)
        except RestNotFound:
            return False
        return True

    async def statfs(self) -> tuple[int, int]:
        """``(capacity, used)`` bytes of /ifs."""
        body = obj(await self.rest.get("/platform/1/cluster/statfs"))
        bsize = number(self.rest, body.get("f_bsize"), "f_bsize")
        blocks = number(self.rest, body.get("f_blocks"), "f_blocks")
        free = number(self.rest, body.get("f_bfree"), "f_bfree")
        return blocks * bsize, (blocks - free) * bsize

    # -- directory quotas ------------------------------------------------------------------------
    def _parse(self, item: Any) -> DirectoryQuota:
        quota_id, path = item.get("id"), item.get("path")
        if not isinstance(quota_id, str) or not isinstance(path, str):
            raise self.rest.malformed("a quota without id or path", self._quotas)
        thresholds, usage = obj(item.get("thresholds")), obj(item.get("usage"))
        hard = optional_number(self.rest, thresholds.get("hard"), "thresholds.hard")
        ready = usage.get("fslogical_ready", item.get("ready", True))
        used = optional_number(self.rest, usage.get("fslogical"), "usage.fslogical")
        return DirectoryQuota(
            id=quota_id,
            path=path,
            hard_limit=hard if item.get("enforced") else None,
            used_bytes=used if ready is not False else None,
        )

    async def directory_quotas(self, under: str) -> list[DirectoryQuota]:
        """Every directory quota at ``under`` or below it, page by page."""
        first = Page(
            self._quotas,
            {"path": under, "recurse_path_children": True, "type": "directory", "limit": PAGE_SIZE},
        )
        items = await self.rest.collect(
            first, items="quotas", next_page=token_pager("resume", "resume", keep_params=False)
        )
        return [self._parse(i) for i in items]

    async def create_directory_quota(self, path: str, hard_limit: int | None) -> str:
        body = {
            "path": path,
            "type": "directory",
            "include_snapshots": False,
            "enforced": hard_limit is not None,
            "thresholds": {"hard": hard_limit} if hard_limit is not None else {},
            "thresholds_on": "fslogicalsize",
        }
        created = obj((await self.rest.request("POST", self._quotas, json=body)).body)
        if not isinstance(created.get("id"), str):
            raise self.rest.malformed("a created quota without an id", self._quotas)
        return str(created["id"])

    async def set_hard_limit(self, quota_id: str, hard_limit: int | None) -> None:
        """Enforce ``hard_limit``, or make it an accounting quota again (``None``)."""
        body = {"enforced": hard_limit is not None, "thresholds": {"hard": hard_limit}}
        await self.rest.request("PUT", f"{self._quotas}/{quota_id}", json=body)

    async def delete_quota(self, quota_id: str) -> None:
        try:
            await self.rest.request("DELETE", f"{self._quotas}/{quota_id}", expect_json=False)
        except RestNotFound:
            pass
