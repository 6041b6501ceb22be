"""Native presigned URLs for the data proxy (capability PRESIGN).

The data-proxy service asks for locations by *area key* (``<storage-prefix>/<project>/…``); they
live below the volume's key prefix, outside every vfolder.  The PUT URL signs ``Content-MD5`` (and
``Content-Length`` when given), so S3 itself refuses a body or header that differs; the native URL
is ``s3://<bucket>/<full key>``.
"""

from __future__ import annotations

from typing import Any

from storage_proxy.core.errors import InvalidParameter
from storage_proxy.volumes.abc import AbstractVolume

from .client import S3Connection
from .entries import etag_md5


class PresignMixin(AbstractVolume):
    conn: S3Connection
    root: str

    def key(self, *parts: str) -> str:
        raise NotImplementedError

    def native_url(self, area_key: str) -> str:
        return f"s3://{self.conn.bucket}/{self.key(area_key)}"

    def area_key(self, native_url: str) -> str:
        """The area key of one of this volume's native URLs (InvalidParameter otherwise)."""
        head = f"s3://{self.conn.bucket}/"
        root = self.key() + "/" if self.root else ""
        if not native_url.startswith(head + root):
            raise InvalidParameter(f"not a location on this volume: {native_url!r}")
        return native_url[len(head + root) :]

    async def presign_put(
        self, area_key: str, content_md5: str, content_length: int | None, expires: int
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL and the headers the client must send with it (they are signed)."""
        params: dict[str, Any] = {"Key": self.key(area_key), "ContentMD5": content_md5}
        headers = {"Content-MD5": content_md5}
        if content_length is not None:
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        return await self.conn.presign("put_object", params, expires), headers

    async def presign_get(self, area_key: str, expires: int) -> str:
        return await self.conn.presign("get_object", {"Key": self.key(area_key)}, expires)

    async def stored_md5(self, area_key: str) -> str | None:
        """``None``: no object; ``""``: an object whose MD5 is unknown; else its hex MD5."""
        head = await self.conn.head(self.key(area_key))
        if head is None:
            return None
        return etag_md5(str(head.get("ETag", ""))) or ""
