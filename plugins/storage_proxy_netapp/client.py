"""An async ONTAP REST client: just the calls the NetApp backend needs.

Separate from the volume adapter so it can be read (and tested) against ONTAP's documented API:
collections answer ``{"records": [...], "num_records": n}`` and take ``fields=``; POST, PATCH and
DELETE on storage objects answer ``202 {"job": {"uuid", "_links"}}`` and the client polls
``/api/cluster/jobs/{uuid}`` until ``success`` or ``failure`` (or ``job-timeout``).  Requests that
are safe to repeat are retried on 5xx and connection errors with exponential backoff.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from .errors import OntapError, OntapJobFailed, OntapJobTimeout

log = logging.getLogger(__name__)

Json = dict[str, Any]
_JOB_DONE = {"success", "failure"}


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
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self._verify_ssl = verify_ssl
        self.job_timeout = job_timeout
        self.poll_interval = poll_interval
        self.retries = retries
        self.backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._verify_ssl)
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=connector, timeout=self._timeout
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
    ) -> tuple[int, Json]:
        """One call, retried on 5xx when that is safe; ONTAP error bodies become OntapError."""
        await self.open()
        assert self._session is not None
        what = f"{method} {path}"
        # A POST that failed with 500 may have been applied; only 503 says it was not.
        retry_on = {500, 502, 503, 504} if method != "POST" else {503}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                async with self._session.request(
                    method, f"{self.endpoint}/api{path}", params=params, json=body
                ) as resp:
                    data = await resp.json(content_type=None) if resp.content_length != 0 else {}
                    if resp.status < 400:
                        return resp.status, data or {}
                    if resp.status not in retry_on or last:
                        raise OntapError.from_body(resp.status, data, what)
                    log.warning("ONTAP answered %s to %s; retrying", resp.status, what)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                if method == "POST" or last:
                    raise OntapError(
                        f"ONTAP at {self.endpoint} unreachable for {what}: {e!r}"
                    ) from e
            await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

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
                raise OntapJobFailed(
                    f"ONTAP job {uuid} for {what} failed: {job.get('message', '')}",
                    ontap_code=str(job.get("code")) if job.get("code") is not None else None,
                )
            if time.monotonic() >= deadline:
                raise OntapJobTimeout(
                    f"ONTAP job {uuid} for {what} still {state} after {self.job_timeout} s"
                )
            await asyncio.sleep(self.poll_interval)

    async def records(self, path: str, params: Mapping[str, str]) -> list[Json]:
        _, data = await self.request("GET", path, params=params)
        return list(data.get("records", []))

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
