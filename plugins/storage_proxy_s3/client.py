"""The S3 connection of one volume: options, the aiobotocore client, error translation, paging.

Why aiobotocore (not boto3 in threads): bodies stream as aiohttp chunks on the event loop, so a
download costs no thread and no extra copy, and concurrency is bounded by the connection pool
(``max-pool-connections``) rather than a thread pool.  botocore's ``standard`` retry mode retries
throttling (SlowDown, 503) and 5xx answers with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import trafaret as t
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from storage_proxy.core.errors import (
    BackendUnavailable,
    FileNotFound,
    PermissionDenied,
    StorageProxyError,
)
from storage_proxy.core.units import BinarySize

from . import signing

log = logging.getLogger(__name__)

MIN_PART = 5 << 20  # S3's smallest part (but the last)
MAX_PARTS = 10_000
DELETE_BATCH = 1000

OPTIONS = t.Dict(
    {
        t.Key("endpoint", default=None): t.Null | t.String(),  # None: AWS for the region
        t.Key("bucket"): t.String(),
        t.Key("prefix", default=""): t.String(allow_blank=True),
        t.Key("region", default="us-east-1"): t.String(),
        t.Key("auth-type", default="accesskey"): t.Enum("accesskey", "iam"),
        t.Key("access-key", default=None): t.Null | t.String(),
        t.Key("secret-key", default=None): t.Null | t.String(),
        t.Key("disable-ssl", default=False): t.ToBool,
        t.Key("addressing-style", default="auto"): t.Enum("auto", "path", "virtual"),
        t.Key("create-bucket", default=False): t.ToBool,
        t.Key("part-size", default="16Mi"): BinarySize(),
        t.Key("upload-concurrency", default=4): t.ToInt(gte=1, lte=64),
        t.Key("multipart-copy-threshold", default="5Gi"): BinarySize(),
        t.Key("max-pool-connections", default=64): t.ToInt(gte=1),
        t.Key("max-attempts", default=5): t.ToInt(gte=1),
        t.Key("staging-dir", default=None): t.Null | t.String(),
        t.Key("quota-usage-ttl", default=30.0): t.ToFloat(gte=0),
        # Send x-amz-checksum-sha256 with every PUT and part: "auto" asks the endpoint at
        # start-up whether it verifies them (AWS, MinIO and RGW >= 18 do; RGW 16.2 ignores them).
        t.Key("checksum-sha256", default="auto"): t.Enum("auto") | t.ToBool,
    }
)


class Hidden(str):
    """A credential: its repr never shows the value (options dicts end up in reprs and logs)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = OPTIONS.check(dict(raw))
    if opts["auth-type"] == "accesskey" and not (opts["access-key"] and opts["secret-key"]):
        raise t.DataError("auth-type 'accesskey' needs access-key and secret-key")
    if opts["part-size"] < MIN_PART:
        raise t.DataError(f"part-size must be at least {MIN_PART} bytes (S3's minimum)")
    for key in ("access-key", "secret-key"):
        if opts[key] is not None:
            opts[key] = Hidden(opts[key])
    opts["prefix"] = opts["prefix"].strip("/")
    return opts


def error_code(e: ClientError) -> tuple[str, int]:
    err = e.response.get("Error", {})
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(err.get("Code", "")), int(status or 0)


def is_not_found(e: Exception) -> bool:
    if not isinstance(e, ClientError):
        return False
    code, status = error_code(e)
    return status == 404 or code in ("NoSuchKey", "NotFound", "404", "NoSuchUpload")


@contextmanager
def translate(what: object) -> Iterator[None]:
    """S3 and transport errors → domain errors (never the credentials, never a 500)."""
    try:
        yield
    except StorageProxyError:
        raise
    except ClientError as e:
        code, status = error_code(e)
        if is_not_found(e):
            raise FileNotFound(f"no such file or directory: {what}") from None
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId"):
            raise PermissionDenied(f"the S3 endpoint refused access to {what} ({code})") from None
        raise BackendUnavailable(f"S3 error {code or status} on {what}") from None
    except (BotoCoreError, OSError) as e:
        raise BackendUnavailable(f"S3 endpoint unreachable ({type(e).__name__})") from None


class S3Connection:
    """An open aiobotocore client plus the bucket it serves; ``open``/``close`` around use."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.bucket: str = options["bucket"]
        self._ctx: Any = None
        self.c: Any = None  # the aiobotocore S3 client
        #: The endpoint verifies x-amz-checksum-sha256 (set at start-up; ``checksums.py``).
        self.sha256 = False

    def _endpoint(self) -> str | None:
        endpoint: str | None = self.options["endpoint"]
        if endpoint and "://" not in endpoint:
            scheme = "http" if self.options["disable-ssl"] else "https"
            endpoint = f"{scheme}://{endpoint}"
        return endpoint

    async def open(self) -> None:
        signing.install()  # part digests computed off the loop are signed as they are
        o = self.options
        creds: dict[str, Any] = {}
        if o["auth-type"] == "accesskey":  # iam: botocore's chain (env, profile, instance role)
            creds = {"aws_access_key_id": o["access-key"], "aws_secret_access_key": o["secret-key"]}
        config = AioConfig(
            s3={"addressing_style": o["addressing-style"]},
            signature_version="s3v4",
            max_pool_connections=o["max-pool-connections"],
            retries={"max_attempts": o["max-attempts"], "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=120,
        )
        self._ctx = get_session().create_client(
            "s3",
            endpoint_url=self._endpoint(),
            region_name=o["region"],
            use_ssl=not o["disable-ssl"],
            config=config,
            **creds,
        )
        self.c = await self._ctx.__aenter__()
        signing.watch(self.c.meta.events)  # known bodies go out as their bytes

    async def close(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.__aexit__(None, None, None)

    async def ensure_bucket(self, create: bool) -> None:
        try:
            await self.c.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if not is_not_found(e):
                with translate(f"bucket {self.bucket}"):
                    raise
        except (BotoCoreError, OSError):
            with translate(f"bucket {self.bucket}"):
                raise
        if not create:
            raise BackendUnavailable(
                f"bucket {self.bucket!r} does not exist at the S3 endpoint; create it, or set "
                "create-bucket = true in the volume options"
            )
        kw: dict[str, Any] = {"Bucket": self.bucket}
        region = self.options["region"]
        if region and region != "us-east-1":
            kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with translate(f"bucket {self.bucket}"):
            await self.c.create_bucket(**kw)
        log.info("created bucket %s", self.bucket)

    async def versioning_enabled(self) -> bool:
        """The bucket keeps versions (``Enabled``; not when never set or ``Suspended``)."""
        with translate(f"bucket {self.bucket}"):
            r = await self.c.get_bucket_versioning(Bucket=self.bucket)
        return r.get("Status") == "Enabled"

    # -- object helpers ----------------------------------------------------------------------
    async def head(self, key: str) -> dict[str, Any] | None:
        """The object's headers, or None when there is no such key."""
        try:
            r: dict[str, Any] = await self.c.head_object(Bucket=self.bucket, Key=key)
            return r
        except ClientError as e:
            if is_not_found(e):
                return None
            with translate(key):
                raise

    async def iter_keys(
        self, prefix: str, *, delimiter: str | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Objects (``Key``, ``Size``, ``LastModified``) and, with a delimiter, common prefixes
        (``{"Prefix": …}``), page by page, in key order."""
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kw["Delimiter"] = delimiter
        if limit is not None:
            kw["MaxKeys"] = max(1, min(limit, 1000))
        seen = 0
        while True:
            with translate(prefix or "/"):
                r = await self.c.list_objects_v2(**kw)
            items = list(r.get("Contents", [])) + list(r.get("CommonPrefixes", []))
            items.sort(key=lambda i: i.get("Key") or i["Prefix"])
            for item in items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not r.get("IsTruncated"):
                return
            kw["ContinuationToken"] = r["NextContinuationToken"]

    async def any_below(self, prefix: str) -> bool:
        async for _ in self.iter_keys(prefix, limit=1):
            return True
        return False

    async def delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + DELETE_BATCH]]
            with translate("delete"):
                r = await self.c.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if r.get("Errors"):
                first = r["Errors"][0]
                raise BackendUnavailable(f"S3 could not delete {first.get('Key')}: {first}")

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key below ``prefix`` (paged); returns how many were deleted."""
        total = 0
        batch: list[str] = []
        async for item in self.iter_keys(prefix):
            batch.append(item["Key"])
            if len(batch) >= DELETE_BATCH:
                await self.delete_keys(batch)
                total, batch = total + len(batch), []
        await self.delete_keys(batch)
        return total + len(batch)

    async def versions(self, prefix: str) -> list[dict[str, Any]]:
        """Every version below ``prefix`` (``Key``, ``VersionId``, ``IsLatest``, ``Size``; a
        key's newest first, as S3 lists them), then the delete markers (``DeleteMarker: True``)."""
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        found: list[dict[str, Any]] = []
        while True:
            with translate(prefix or "/"):
                r = await self.c.list_object_versions(**kw)
            found.extend(r.get("Versions", []))
            found.extend({**m, "DeleteMarker": True} for m in r.get("DeleteMarkers", []))
            if not r.get("IsTruncated"):
                return found
            kw["KeyMarker"] = r["NextKeyMarker"]
            kw["VersionIdMarker"] = r["NextVersionIdMarker"]

    async def delete_versions(self, items: list[dict[str, Any]]) -> None:
        """Delete these versions (and markers) for good."""
        for i in range(0, len(items), DELETE_BATCH):
            batch = [
                {"Key": v["Key"], "VersionId": v["VersionId"]} for v in items[i : i + DELETE_BATCH]
            ]
            with translate("delete"):
                await self.c.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    async def copy(self, src: str, dst: str, size: int, version: str | None = None) -> str | None:
        """Server-side copy (of one ``version`` of ``src`` if given); multipart (UploadPartCopy)
        above ``multipart-copy-threshold``.  The copy's ETag where it is the source's (a single
        CopyObject), else None."""
        source = {"Bucket": self.bucket, "Key": src}
        if version is not None:
            source["VersionId"] = version
        if size <= self.options["multipart-copy-threshold"]:
            with translate(src):
                r = await self.c.copy_object(Bucket=self.bucket, Key=dst, CopySource=source)
            etag = r.get("CopyObjectResult", {}).get("ETag")
            return str(etag) if etag else None
        part = max(self.options["part-size"], -(-size // MAX_PARTS))
        with translate(src):
            head = await self.c.head_object(**source)
            mp = await self.c.create_multipart_upload(
                Bucket=self.bucket,
                Key=dst,
                Metadata=head.get("Metadata", {}),
                ContentType=head.get("ContentType", "application/octet-stream"),
            )
        upload_id = mp["UploadId"]
        try:
            parts = []
            for n, start in enumerate(range(0, size, part), start=1):
                end = min(start + part, size) - 1
                with translate(src):
                    r = await self.c.upload_part_copy(
                        Bucket=self.bucket,
                        Key=dst,
                        UploadId=upload_id,
                        PartNumber=n,
                        CopySource=source,
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
            with translate(dst):
                await self.c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            await self.abort(dst, upload_id)
            raise
        return None

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload so no parts stay billed; best effort, never raises."""
        try:
            await self.c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:
            log.warning(
                "could not abort multipart upload of %s; the bucket's lifecycle rule "
                "for incomplete uploads will remove it",
                key,
            )

    async def presign(self, method: str, params: dict[str, Any], expires: int) -> str:
        url: str = await self.c.generate_presigned_url(
            method, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires
        )
        return url


def modified(item: Mapping[str, Any]) -> datetime:
    value = item.get("LastModified")
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(0).astimezone()
