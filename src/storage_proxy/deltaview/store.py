"""The backend S3, reached with the proxy's own credentials through aiobotocore.

Why aiobotocore rather than boto3 in threads: bodies stream as aiohttp chunks on the event loop
(bounded memory, no thread per download), and no thread pool caps concurrency. The store turns
backend errors into the view's S3 errors where it catches them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from . import sigv4
from .config import S3Backend
from .errors import S3Error, S3ErrorCode

CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectMeta:
    size: int
    etag: str  # quoted, as S3 sends it
    last_modified: datetime
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str
    last_modified: datetime


@dataclass
class ListPage:
    objects: list[ListedObject]
    next_token: str | None


@dataclass(frozen=True)
class Follower:
    """The request that will follow a redirect, when it is not a plain GET: the
    ``x-amz-content-sha256`` it re-sends (object_store does), signed into the URL."""

    content_sha256: str


@dataclass
class Download:
    body: AsyncIterator[bytes]
    close: Callable[[], None]


class ObjectStore(Protocol):
    async def head(self, bucket: str, key: str) -> ObjectMeta: ...
    async def get(self, bucket: str, key: str, byte_range: str | None = None) -> Download: ...
    async def get_bytes(self, bucket: str, key: str) -> bytes | None: ...
    async def list_page(
        self, bucket: str, prefix: str, start_after: str | None, token: str | None, limit: int
    ) -> ListPage: ...
    async def put(self, bucket: str, key: str, body: bytes, content_type: str | None) -> str: ...
    async def delete(self, bucket: str, key: str) -> None: ...
    async def presign_get(
        self, bucket: str, key: str, expires: int, follower: Follower | None = None
    ) -> str: ...
    async def post(self, bucket: str, key: str) -> None: ...
    async def begin_write(self, key: str) -> None: ...


def _translate(e: Exception) -> S3Error:
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return S3Error(S3ErrorCode.NO_SUCH_KEY)
        if code == "InvalidRange" or status == 416:
            return S3Error(S3ErrorCode.INVALID_RANGE)
        if status in (401, 403):
            return S3Error(S3ErrorCode.ACCESS_DENIED, "the backend refused", reason="backend")
    return S3Error(S3ErrorCode.SERVICE_UNAVAILABLE, reason="backend")


class S3Store:
    """ObjectStore over aiobotocore; open with ``await S3Store.open(cfg)``, close with aclose()."""

    def __init__(
        self,
        client: Any,
        ctx: Any,
        observe: Callable[[float], None] | None,
        cfg: S3Backend = S3Backend(),
        credentials: Any = None,
    ) -> None:
        self._client = client
        self._ctx = ctx
        self._observe = observe or (lambda _s: None)
        self._region = cfg.region or "us-east-1"
        self._endpoint = (cfg.endpoint or f"https://s3.{self._region}.amazonaws.com").rstrip("/")
        self._static = (
            (cfg.access_key_id, cfg.secret_access_key)
            if cfg.access_key_id and cfg.secret_access_key
            else None
        )
        self._credentials = credentials  # the default chain's, when the config names none

    @classmethod
    async def open(cls, cfg: S3Backend, observe: Callable[[float], None] | None = None) -> S3Store:
        session = get_session()
        ctx = session.create_client(
            "s3",
            endpoint_url=cfg.endpoint,
            region_name=cfg.region or "us-east-1",
            aws_access_key_id=cfg.access_key_id,
            aws_secret_access_key=cfg.secret_access_key,
            config=AioConfig(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                max_pool_connections=64,
                retries={"max_attempts": 2, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        client = await ctx.__aenter__()
        chain = None if cfg.access_key_id and cfg.secret_access_key else session.get_credentials()
        return cls(client, ctx, observe, cfg, await chain if chain is not None else None)

    async def aclose(self) -> None:
        await self._ctx.__aexit__(None, None, None)

    async def _call(self, op: str, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return await getattr(self._client, op)(**kw)
        except (ClientError, BotoCoreError, OSError) as e:
            raise _translate(e) from e
        finally:
            self._observe(time.perf_counter() - start)

    async def head(self, bucket: str, key: str) -> ObjectMeta:
        r = await self._call("head_object", Bucket=bucket, Key=key)
        return ObjectMeta(
            r["ContentLength"],
            r["ETag"],
            r["LastModified"],
            r.get("ContentType") or "application/octet-stream",
        )

    async def get(self, bucket: str, key: str, byte_range: str | None = None) -> Download:
        kw: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range:
            kw["Range"] = byte_range
        r = await self._call("get_object", **kw)
        body = r["Body"]

        expected = r.get("ContentLength")
        raw = getattr(body, "raw_stream", None)
        content = getattr(raw, "content", None)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                if content is not None:
                    # the aiohttp stream itself: whatever has arrived, no re-buffering
                    seen = 0
                    async for chunk in content.iter_any():
                        seen += len(chunk)
                        yield chunk
                    if seen != expected:
                        raise S3Error(S3ErrorCode.SERVICE_UNAVAILABLE, "backend stream cut short")
                else:
                    async for chunk in body.iter_chunks(CHUNK):
                        yield chunk
            finally:
                body.close()

        return Download(chunks(), body.close)

    async def get_bytes(self, bucket: str, key: str) -> bytes | None:
        try:
            r = await self._call("get_object", Bucket=bucket, Key=key)
        except S3Error as e:
            if e.error is S3ErrorCode.NO_SUCH_KEY:
                return None
            raise
        async with r["Body"] as body:
            data: bytes = await body.read()
            return data

    async def list_page(
        self, bucket: str, prefix: str, start_after: str | None, token: str | None, limit: int
    ) -> ListPage:
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
        if token:
            kw["ContinuationToken"] = token
        elif start_after:
            kw["StartAfter"] = start_after
        r = await self._call("list_objects_v2", **kw)
        objs = [
            ListedObject(o["Key"], o["Size"], o["ETag"], o["LastModified"])
            for o in r.get("Contents", [])
        ]
        return ListPage(objs, r.get("NextContinuationToken") if r.get("IsTruncated") else None)

    async def put(self, bucket: str, key: str, body: bytes, content_type: str | None) -> str:
        kw: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body}
        if content_type:
            kw["ContentType"] = content_type
        r = await self._call("put_object", **kw)
        return str(r.get("ETag", '""'))

    async def delete(self, bucket: str, key: str) -> None:
        await self._call("delete_object", Bucket=bucket, Key=key)

    async def _keys(self) -> tuple[str, str, str | None]:
        if self._static is not None:
            return self._static[0], self._static[1], None
        if self._credentials is None:
            raise S3Error(S3ErrorCode.SERVICE_UNAVAILABLE, "no backend credentials to presign")
        frozen = await self._credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    async def presign_get(
        self, bucket: str, key: str, expires: int, follower: Follower | None = None
    ) -> str:
        """Our own SigV4 presigner (path-style): botocore's costs ~50x more per URL, and it
        cannot sign for the headers a redirect follower re-sends."""
        access, secret, token = await self._keys()
        req = sigv4.PresignRequest(
            self._endpoint,
            sigv4.object_path(bucket, key),
            self._region,
            expires,
            follower.content_sha256 if follower else None,
        )
        return sigv4.presign(req, access, secret, token, datetime.now(UTC))

    async def post(self, bucket: str, key: str) -> None:
        """POST operations (multipart uploads, DeleteObjects) are not passed through."""
        raise S3Error(S3ErrorCode.NOT_IMPLEMENTED)

    async def begin_write(self, key: str) -> None:
        """Called before a write request's body is read; the read-only wrapper refuses here."""
