"""An async ONTAP REST client: just the calls the NetApp backend needs.

Separate from the volume adapter so it can be read (and tested) against ONTAP's documented API:
collections answer ``{"records": [...], "num_records": n, "_links": {"next": {"href"}}}`` and take
``fields=``; the client follows ``_links.next`` until the last page.  POST, PATCH and DELETE on
storage objects answer ``202 {"job": {"uuid", "_links"}}`` and the client polls
``/api/cluster/jobs/{uuid}`` until ``success`` or ``failure`` (or ``job-timeout``).  Transport,
basic auth, retries (5xx and connection errors where a repeat is safe; a POST only on 503), TLS
and error bodies are the shared REST client's (:mod:`storage_proxy.volumes.rest`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from storage_proxy.volumes.rest import BasicAuth, Page, RestClient, link_pager

from .errors import ONTAP_ERRORS, OntapJobFailed, OntapJobTimeout, ontap_error_body

Json = dict[str, Any]
#: Records asked for per page of a collection.
PAGE_SIZE = 1000


def _next_link(body: Any) -> Any:
    links = body.get("_links") if isinstance(body, dict) else None
    nxt = links.get("next") if isinstance(links, dict) else None
    return nxt.get("href") if isinstance(nxt, dict) else None


class OntapClient:
    def __init__(
        self,
        endpoint: str,
        user: str,
        password: str,
        *,
        verify_ssl: bool = True,
        job_timeout: float = 120.0,
        poll_interval: float = 0.5,
        retries: int = 3,
        backoff: float = 0.5,
        request_timeout: float = 30.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.rest = RestClient(
            "ONTAP",
            endpoint,
            BasicAuth(user, password),
            error_body=ontap_error_body,
            kinds=ONTAP_ERRORS,
            verify_ssl=verify_ssl,
            request_timeout=request_timeout,
            retries=retries,
            backoff=backoff,
        )
        self.endpoint = self.rest.endpoint
        self.job_timeout = job_timeout
        self.poll_interval = poll_interval
        self.page_size = page_size

    async def open(self) -> None:
        await self.rest.open()

    async def close(self) -> None:
        await self.rest.close()

    # -- transport ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
    ) -> tuple[int, Json]:
        """One call below ``/api``; ONTAP error bodies become OntapError."""
        resp = await self.rest.request(method, f"/api{path}", params=params, json=body)
        return resp.status, resp.body if isinstance(resp.body, dict) else {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
    ) -> Json:
        """A modifying call: waits for its job when ONTAP answers 202."""
        status, data = await self.request(method, path, params=params, body=body)
        job = data.get("job")
        if status == 202 and isinstance(job, dict):
            await self.wait_job(job["uuid"], f"{method} {path}")
        return data

    async def wait_job(self, uuid: str, what: str) -> Json:
        deadline = time.monotonic() + self.job_timeout
        while True:
            _, job = await self.request(
                "GET", f"/cluster/jobs/{uuid}", params={"fields": "state,message,code"}
            )
            state = job.get("state")
            if state == "success":
                return job
            if state == "failure":
                code = job.get("code")
                raise OntapJobFailed(
                    f"ONTAP job {uuid} for {what} failed: {job.get('message', '')}",
                    vendor_code=None if code is None else str(code),
                )
            if time.monotonic() >= deadline:
                raise OntapJobTimeout(
                    f"ONTAP job {uuid} for {what} still {state} after {self.job_timeout} s"
                )
            await asyncio.sleep(self.poll_interval)

    async def records(self, path: str, params: Mapping[str, str]) -> list[Json]:
        """Every record of a collection, page after page."""
        first = Page(f"/api{path}", {**params, "max_records": self.page_size})
        return await self.rest.collect(first, items="records", next_page=link_pager(_next_link))

    # -- volumes -----------------------------------------------------------------------------
    async def find_volume(self, svm: str, name: str) -> Json | None:
        found = await self.records(
            "/storage/volumes",
            {"svm.name": svm, "name": name, "fields": "uuid,name,space,quota.state"},
        )
        return found[0] if found else None

    async def volume_space(self, volume_uuid: str) -> Json:
        _, data = await self.request(
            "GET", f"/storage/volumes/{volume_uuid}", params={"fields": "space"}
        )
        return dict(data.get("space", {}))

    async def enable_quota(self, volume_uuid: str) -> None:
        await self.call(
            "PATCH", f"/storage/volumes/{volume_uuid}", body={"quota": {"enabled": True}}
        )

    # -- qtrees ------------------------------------------------------------------------------
    async def find_qtree(self, svm: str, volume: str, name: str) -> Json | None:
        found = await self.records(
            "/storage/qtrees",
            {"svm.name": svm, "volume.name": volume, "name": name, "fields": "id,name,path"},
        )
        return found[0] if found else None

    async def create_qtree(self, svm: str, volume: str, name: str, mode: int = 0o755) -> None:
        body = {
            "svm": {"name": svm},
            "volume": {"name": volume},
            "name": name,
            "security_style": "unix",
            "unix_permissions": int(oct(mode)[2:]),  # ONTAP takes the octal digits as a number
        }
        await self.call("POST", "/storage/qtrees", body=body)

    async def delete_qtree(self, volume_uuid: str, qtree_id: int) -> None:
        await self.call("DELETE", f"/storage/qtrees/{volume_uuid}/{qtree_id}")

    # -- tree quota rules and reports --------------------------------------------------------
    async def find_tree_rule(self, svm: str, volume: str, qtree: str) -> Json | None:
        found = await self.records(
            "/storage/quota/rules",
            {
                "svm.name": svm,
                "volume.name": volume,
                "type": "tree",
                "qtree.name": qtree,
                "fields": "uuid,space,qtree",
            },
        )
        return found[0] if found else None

    async def create_tree_rule(
        self, svm: str, volume: str, qtree: str, hard_limit: int | None
    ) -> None:
        """A tree rule; without a limit it only tracks usage (so the report has the qtree)."""
        body: Json = {
            "svm": {"name": svm},
            "volume": {"name": volume},
            "type": "tree",
            "qtree": {"name": qtree},
        }
        if hard_limit is not None:
            body["space"] = {"hard_limit": hard_limit, "soft_limit": hard_limit}
        await self.call("POST", "/storage/quota/rules", body=body)

    async def set_rule_limit(self, rule_uuid: str, hard_limit: int) -> None:
        space = {"hard_limit": hard_limit, "soft_limit": hard_limit}
        await self.call("PATCH", f"/storage/quota/rules/{rule_uuid}", body={"space": space})

    async def delete_rule(self, rule_uuid: str) -> None:
        await self.call("DELETE", f"/storage/quota/rules/{rule_uuid}")

    async def tree_reports(self, svm: str, volume: str) -> dict[str, Json]:
        """Qtree name -> its tree quota report record, for every qtree of the volume at once."""
        found = await self.records(
            "/storage/quota/reports",
            {"svm.name": svm, "volume.name": volume, "type": "tree", "fields": "qtree,space,files"},
        )
        return {r["qtree"]["name"]: r for r in found if r.get("qtree", {}).get("name")}

    # -- volume snapshots ----------------------------------------------------------------------
    async def snapshots(self, volume_uuid: str, name: str) -> list[Json]:
        """Snapshots of the volume whose name matches ``name`` (ONTAP's query: ``*`` wildcards)."""
        return await self.records(
            f"/storage/volumes/{volume_uuid}/snapshots",
            {"name": name, "fields": "uuid,name,create_time,comment"},
        )

    async def create_snapshot(self, volume_uuid: str, name: str, comment: str) -> None:
        body = {"name": name, "comment": comment}
        await self.call("POST", f"/storage/volumes/{volume_uuid}/snapshots", body=body)

    async def delete_snapshot(self, volume_uuid: str, snapshot_uuid: str) -> None:
        await self.call("DELETE", f"/storage/volumes/{volume_uuid}/snapshots/{snapshot_uuid}")
