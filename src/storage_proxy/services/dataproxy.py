"""Signed upload and download locations, in the style of Flyte's data proxy.

The manager asks for a location (project, domain, MD5, optional length and expiry, all capped by
``[dataproxy]``); the client then talks to storage with nothing but the signed URL.  A volume with
capability PRESIGN (s3) answers with native presigned URLs and S3 checks the signed MD5, length
and expiry; any other volume answers with a signed client-API URL (``/signed/<token>``, an HS256
JWT carrying key, method, MD5, maximum length and ``exp``) and :class:`VFolderArea` checks the
same things itself, storing through the file service into a vfolder of its own.  Both expose
one small protocol, :class:`SignedArea`, so the rules live once here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import string
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast, runtime_checkable

from ..core.errors import (
    Conflict,
    FileNotFound,
    InvalidParameter,
    InvalidToken,
    IsADirectory,
    NotADirectory,
    NotSupported,
    StorageProxyError,
)
from ..core.files import WriteOptions
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.types import Capability, QuotaScopeID, QuotaScopeType, VFolderID
from ..volumes.abc import AbstractVolume
from ..volumes.registry import VolumeRegistry
from .access import Actor
from .files import Download, FileService
from .hs256 import HS256, TokenError, TokenExpired
from .vfolders import VFolderService

AUDIENCE = "storage-proxy:dataproxy"  # session-token checks refuse these tokens, and vice versa
#: Files up to this size are read with their opening (no sendfile set-up).
SMALL_READ = 64 * 1024
_FILENAME_ALPHABET = string.ascii_lowercase + string.digits


@runtime_checkable
class SignedArea(Protocol):
    """Where signed locations live on one volume; keys are ``<storage-prefix>/<project>/…``."""

    def native_url(self, area_key: str) -> str: ...
    def area_key(self, native_url: str) -> str: ...
    async def presign_put(
        self, area_key: str, content_md5: str, content_length: int | None, expires: int
    ) -> tuple[str, dict[str, str]]: ...
    async def presign_get(self, area_key: str, expires: int) -> str: ...
    async def stored_md5(self, area_key: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DataProxySettings:
    volume: str | None
    storage_prefix: str
    client_url: str
    max_upload_expiry: timedelta
    max_upload_size: int
    filename_length: int
    max_download_expiry: timedelta

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DataProxySettings:
        dp = config["dataproxy"]
        client = config["api"]["client"]
        addr = client["service-addr"]
        scheme = "https" if client["ssl-enabled"] else "http"
        return cls(
            volume=dp["volume"],
            storage_prefix=dp["storage-prefix"].strip("/"),
            client_url=(dp["client-url"] or f"{scheme}://{addr['host']}:{addr['port']}"),
            max_upload_expiry=dp["upload"]["max-expires-in"],
            max_upload_size=dp["upload"]["max-size"],
            filename_length=dp["upload"]["default-filename-length"],
            max_download_expiry=dp["download"]["max-expires-in"],
        )


@dataclass(frozen=True, slots=True)
class UploadLocation:
    signed_url: str
    native_url: str
    expires_at: datetime
    headers: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {
            "signed_url": self.signed_url,
            "native_url": self.native_url,
            "expires_at": self.expires_at.isoformat(),
            "headers": self.headers,
        }


@dataclass(frozen=True, slots=True)
class DownloadLink:
    signed_url: str
    expires_at: datetime

    def to_json(self) -> dict[str, object]:
        return {"signed_url": self.signed_url, "expires_at": self.expires_at.isoformat()}


def _component(value: str, what: str) -> str:
    if not value or "/" in value or "\x00" in value or value in (".", ".."):
        raise InvalidParameter(f"{what} must be one non-empty path component: {value!r}")
    return value


def _filename(value: str) -> str:
    parts = value.split("/")
    for part in parts:
        _component(part, "filename")
    return "/".join(parts)


def decode_md5(value: str) -> bytes:
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("content_md5 must be base64") from None
    if len(digest) != 16:
        raise InvalidParameter(f"content_md5 must be 16 bytes, got {len(digest)}")
    return digest


class DataProxyService:
    def __init__(
        self,
        settings: DataProxySettings,
        volumes: VolumeRegistry,
        secret: str,
        files: FileService,
        vfolders: VFolderService,
    ) -> None:
        self.settings = settings
        self._volumes = volumes
        self.files = files
        self.vfolders = vfolders
        self._jwt = HS256(secret)
        self.client_url = settings.client_url  # tests point it at their ephemeral port
        self._areas: dict[str, SignedArea] = {}

    # -- which storage -----------------------------------------------------------------------
    def _default_volume(self) -> str:
        if self.settings.volume:
            return self.settings.volume
        names = [name for name, _ in self._volumes.items()]
        if not names:
            raise NotSupported("signed locations", "(no volume configured)")
        s3 = [n for n in names if self._volumes.backend_of(n) == "s3"]
        return (s3 or names)[0]

    def area(self, volume_name: str | None = None) -> SignedArea:
        name = volume_name or self._default_volume()
        if name not in self._areas:
            self._areas[name] = self._make_area(self._volumes.get(name))
        return self._areas[name]

    def _make_area(self, volume: AbstractVolume) -> SignedArea:
        if Capability.PRESIGN in volume.capabilities and isinstance(volume, SignedArea):
            return cast(SignedArea, volume)
        return VFolderArea(volume, self)

    def served_area(self, volume_name: str) -> VFolderArea:
        """The area of a signed URL this daemon serves itself (not a presigned one)."""
        area = self.area(volume_name)
        if not isinstance(area, VFolderArea):
            raise InvalidToken("this signed URL is not served by the proxy")
        return area

    async def receive(
        self, token: str, header_md5: str | None, length: int | None, body: AsyncIterator[bytes]
    ) -> str:
        """A signed PUT (``/signed/<token>``); the body's hex MD5 once it is stored."""
        claims = self.verify(token, "PUT")
        area = self.served_area(str(claims["vol"]))
        return await area.receive(claims, header_md5, length, body)

    async def open(self, token: str) -> Download:
        """A signed GET: the stored object, opened."""
        claims = self.verify(token, "GET")
        return await self.served_area(str(claims["vol"])).open(str(claims["key"]))

    # -- tokens for POSIX volumes ------------------------------------------------------------
    def sign(self, claims: dict[str, Any], expires: int) -> str:
        payload = {**claims, "aud": AUDIENCE, "exp": int(time.time()) + expires}
        return self._jwt.encode(payload)

    def verify(self, token: str, method: str) -> dict[str, Any]:
        try:
            claims = self._jwt.decode(token, require=("exp", "aud"), audience=AUDIENCE)
        except TokenExpired:
            raise InvalidToken("the signed URL has expired") from None
        except TokenError as e:
            raise InvalidToken(f"the signed URL is invalid: {e}") from None
        if claims.get("method") != method:
            raise InvalidToken(f"this signed URL is not for {method}")
        return claims

    # -- the two operations ------------------------------------------------------------------
    def _expiry(self, requested: timedelta | None, cap: timedelta, what: str) -> int:
        if requested is None:
            return int(cap.total_seconds())
        if requested.total_seconds() <= 0:
            raise InvalidParameter("expires_in must be positive")
        if requested > cap:
            raise InvalidParameter(
                f"expires_in {int(requested.total_seconds())}s exceeds {what} "
                f"({int(cap.total_seconds())}s)",
                limit=what,
            )
        return int(requested.total_seconds())

    async def upload_location(
        self,
        *,
        project: str,
        domain: str,
        content_md5: str,
        filename: str | None = None,
        filename_root: str | None = None,
        content_length: int | None = None,
        expires_in: timedelta | None = None,
    ) -> UploadLocation:
        s = self.settings
        digest = decode_md5(content_md5)
        if content_length is not None and content_length > s.max_upload_size:
            raise InvalidParameter(
                f"content_length {content_length} exceeds upload.max-size ({s.max_upload_size})",
                limit="upload.max-size",
            )
        expires = self._expiry(expires_in, s.max_upload_expiry, "upload.max-expires-in")
        folder = _component(filename_root, "filename_root") if filename_root else None
        folder = folder or base64.b32encode(digest).decode()
        if not filename:
            filename = "".join(secrets.choice(_FILENAME_ALPHABET) for _ in range(s.filename_length))
        key = "/".join(
            (
                s.storage_prefix,
                _component(project, "project"),
                _component(domain, "domain"),
                folder,
                _filename(filename),
            )
        )
        area = self.area()
        stored = await area.stored_md5(key)
        if stored is not None and stored != digest.hex():
            raise Conflict(f"{area.native_url(key)} already exists with different content")
        url, headers = await area.presign_put(key, content_md5, content_length, expires)
        return UploadLocation(
            url, area.native_url(key), datetime.now(UTC) + timedelta(seconds=expires), headers
        )

    async def download_link(
        self, native_url: str, expires_in: timedelta | None = None
    ) -> DownloadLink:
        cap = self.settings.max_download_expiry
        if expires_in is not None and expires_in.total_seconds() <= 0:
            raise InvalidParameter("expires_in must be positive")
        expires = int(min(expires_in or cap, cap).total_seconds())
        area = self.area()
        key = area.area_key(native_url)
        if not key.startswith(self.settings.storage_prefix + "/"):
            raise InvalidParameter(f"not a data-proxy location: {native_url!r}")
        if await area.stored_md5(key) is None:
            raise FileNotFound(f"no object at {native_url}")
        url = await area.presign_get(key, expires)
        return DownloadLink(url, datetime.now(UTC) + timedelta(seconds=expires))


class BadDigest(InvalidParameter):
    code, title = "bad-digest", "The body does not match the signed Content-MD5"


class EntityTooLarge(StorageProxyError):
    status, code, title = 413, "entity-too-large", "The body is larger than the signed length"


#: The vfolder the signed locations of a volume without presigning live in (its own quota
#: scope, so an operator can give the area a limit with the quota-scope API).
AREA_VFID = VFolderID(
    QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid5(uuid.NAMESPACE_URL, "storage-proxy:dataproxy")),
    uuid.uuid5(uuid.NAMESPACE_URL, "storage-proxy:dataproxy:area"),
)


class VFolderArea:
    """Signed locations on a volume that cannot presign: files in the area vfolder
    (:data:`AREA_VFID`), written and read through the file service like any other file, so the
    volume's own write path, quota and audit apply.

    Native URL: ``file://<volume-name>/<key>``.  A signed PUT is stored only once its length and
    MD5 match the signed ones (the body is refused at its end otherwise, before the volume
    publishes anything): nothing else is left.
    """

    def __init__(self, volume: AbstractVolume, service: DataProxyService) -> None:
        self.volume = volume
        self._service = service
        self._ready = False

    def native_url(self, area_key: str) -> str:
        return f"file://{self.volume.name}/{area_key}"

    def area_key(self, native_url: str) -> str:
        head = f"file://{self.volume.name}/"
        if not native_url.startswith(head):
            raise InvalidParameter(f"not a location on this volume: {native_url!r}")
        return str(RelPath.parse(native_url[len(head) :], allow_root=False))

    def _actor(self, right: Permission) -> Actor:
        return Actor.for_grant("signed", self.volume.name, str(AREA_VFID), right)

    async def _ensure(self) -> None:
        if not self._ready:
            await self._service.vfolders.ensure(self.volume.name, AREA_VFID)
            self._ready = True

    def _url(self, claims: dict[str, Any], expires: int) -> str:
        claims = {**claims, "vol": self.volume.name}
        token = self._service.sign(claims, expires)
        return f"{self._service.client_url.rstrip('/')}/signed/{token}"

    async def presign_put(
        self, area_key: str, content_md5: str, content_length: int | None, expires: int
    ) -> tuple[str, dict[str, str]]:
        max_len = self._service.settings.max_upload_size
        claims = {"method": "PUT", "key": area_key, "md5": content_md5, "len": content_length}
        claims["max"] = content_length if content_length is not None else max_len
        headers = {"Content-MD5": content_md5}
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        return self._url(claims, expires), headers

    async def presign_get(self, area_key: str, expires: int) -> str:
        return self._url({"method": "GET", "key": area_key}, expires)

    async def stored_md5(self, area_key: str) -> str | None:
        await self._ensure()
        files, rel = self._service.files, RelPath.parse(area_key, allow_root=False)
        try:
            meta = await files.file_meta(self._actor(Permission.RO), self.volume.name,
                                         AREA_VFID, rel)  # fmt: skip
        except (FileNotFound, NotADirectory, IsADirectory):
            return None
        if meta.md5 is not None:
            return meta.md5
        md5 = hashlib.md5()  # written behind the proxy's back: read it
        async for chunk in self.volume.read(AREA_VFID, rel):
            md5.update(chunk)
        return md5.hexdigest()

    async def open(self, area_key: str) -> Download:
        await self._ensure()
        rel = RelPath.parse(area_key, allow_root=False)
        try:
            return await self._service.files.open_download(
                self._actor(Permission.RO), self.volume.name, AREA_VFID, rel,
                read_up_to=SMALL_READ,
            )  # fmt: skip
        except IsADirectory:
            raise FileNotFound(f"no object at {self.native_url(area_key)}") from None

    async def receive(
        self,
        claims: dict[str, Any],
        header_md5: str | None,
        declared_length: int | None,
        body: AsyncIterator[bytes],
    ) -> str:
        """Store a signed PUT's body; returns its hex MD5.  Refused (and nothing kept) when the
        MD5 header or body differs from the signed MD5, or the body is longer than signed."""
        key, signed_md5, limit = str(claims["key"]), str(claims["md5"]), int(claims["max"])
        exact = claims.get("len")
        if header_md5 is not None and header_md5 != signed_md5:
            raise BadDigest("Content-MD5 differs from the one the URL was signed for")
        if declared_length is not None and declared_length > limit:
            raise EntityTooLarge(f"{declared_length} bytes exceed the signed {limit}")
        rel = RelPath.parse(key, allow_root=False)
        await self._ensure()
        md5 = hashlib.md5()

        async def verified() -> AsyncIterator[bytes]:
            size = 0
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise EntityTooLarge(f"the body is longer than the signed {limit} bytes")
                md5.update(chunk)
                yield chunk
            # the end of the body: refused here, the volume publishes nothing
            if exact is not None and size != int(exact):
                raise InvalidParameter(f"the body has {size} bytes, the URL was signed for {exact}")
            if md5.digest() != base64.b64decode(signed_md5):
                raise BadDigest("the body's MD5 differs from the signed Content-MD5")
            existing = await self.stored_md5(key)
            if existing is not None and existing != md5.hexdigest():
                raise Conflict(f"{self.native_url(key)} already exists with different content")

        options = WriteOptions(size_hint=declared_length, checksums=True)
        await self._service.files.write(
            self._actor(Permission.RW), self.volume.name, AREA_VFID, rel, verified(), options
        )
        return md5.hexdigest()
