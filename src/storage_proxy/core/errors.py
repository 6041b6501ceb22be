"""One domain error hierarchy.

Services and backends raise these; only the API layer maps them to HTTP (problem+json) or S3 XML.
Each error carries a stable machine-readable ``code`` and the HTTP status it stands for.
"""

from __future__ import annotations

from typing import Any


class StorageProxyError(Exception):
    """Base of every error the daemon reports to a caller."""

    status: int = 500
    code: str = "internal-error"
    title: str = "Internal server error"
    #: The path the failure is about, where the storage said (a file operation's errors).
    subject: str | None = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the error implies (none by default)."""
        return {}

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:storage-proxy:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class InvalidParameter(StorageProxyError):
    status, code, title = 400, "invalid-parameter", "Invalid request parameter"


class MalformedBody(InvalidParameter):
    """No request body where one is required (or one that is not a JSON object)."""

    code = "malformed-body"


class IncompleteBody(InvalidParameter):
    """A body that ended before its own framing said it would (a multipart part without its
    closing boundary): what came is never stored as if it were whole."""

    code, title = "incomplete-body", "The request body ended early"


class MetadataTooLarge(InvalidParameter):
    """A file's tags and content type beyond what is kept with it (``MAX_FILE_META_BYTES``), or
    more than the filesystem holds in the file's extended attributes."""

    code, title = "metadata-too-large", "The file's metadata is too large"


class InvalidPath(StorageProxyError):
    status, code, title = 400, "invalid-path", "Path escapes its vfolder or is malformed"


class NotARegularFile(InvalidPath):
    """A FIFO, socket or device where a file's bytes are asked for: never opened to be read."""

    code, title = "not-a-regular-file", "Not a regular file or directory"


class NotADirectory(StorageProxyError):
    status, code, title = 400, "not-a-directory", "Not a directory"


class IsADirectory(StorageProxyError):
    status, code, title = 400, "is-a-directory", "Is a directory"


class DirectoryNotEmpty(StorageProxyError):
    status, code, title = 400, "directory-not-empty", "Directory not empty"


class TreeTooDeep(StorageProxyError):
    """A tree nested deeper than ``[storage-proxy] max-tree-depth`` is not copied or zipped."""

    status, code, title = 422, "tree-too-deep", "Directory tree nested too deep"


class InvalidToken(StorageProxyError):
    status, code, title = 401, "invalid-token", "Missing, malformed or expired token"


class InvalidTokenClaims(InvalidToken):
    """A good signature on a token of another kind (a download token where an archive token
    is asked for, say)."""

    code = "invalid-token-claims"


class AuthenticationFailed(StorageProxyError):
    status, code, title = 403, "invalid-auth-token", "Missing or invalid authentication token"


class PermissionDenied(StorageProxyError):
    status, code, title = 403, "permission-denied", "Permission denied"


class NotFound(StorageProxyError):
    status, code, title = 404, "not-found", "Not found"


class VolumeNotFound(NotFound):
    code, title = "volume-not-found", "No such volume"


class QuotaScopeNotFound(NotFound):
    code, title = "quota-scope-not-found", "No such quota scope"


class VFolderNotFound(NotFound):
    code, title = "vfolder-not-found", "No such vfolder"


class FileNotFound(NotFound):
    code, title = "file-not-found", "No such file or directory"


class SnapshotNotFound(NotFound):
    code, title = "snapshot-not-found", "No such snapshot"


class VersionNotFound(NotFound):
    code, title = "version-not-found", "No such version of the file"


class AlreadyExists(StorageProxyError):
    status, code, title = 409, "already-exists", "Already exists"


class QuotaScopeExists(AlreadyExists):
    code, title = "quota-scope-exists", "Quota scope already exists"


class VFolderExists(AlreadyExists):
    code, title = "vfolder-exists", "VFolder already exists"


class FileExists(AlreadyExists):
    code, title = "file-exists", "File already exists"


class SnapshotExists(AlreadyExists):
    code, title = "snapshot-exists", "A snapshot of that name already exists"


class Conflict(StorageProxyError):
    status, code, title = 409, "conflict", "Conflict"


class UploadOffsetMismatch(Conflict):
    code, title = "upload-offset-mismatch", "Upload-Offset does not match the stored offset"


class VersionInSnapshot(Conflict):
    code, title = "version-in-snapshot", "A snapshot of the vfolder holds this version"


class Gone(StorageProxyError):
    status, code, title = 410, "gone", "Gone"


class UploadNotFound(NotFound):
    code, title = "upload-not-found", "No such upload"


class PreconditionFailed(StorageProxyError):
    status, code, title = 412, "precondition-failed", "Precondition failed"


class UnsupportedMediaType(StorageProxyError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class RangeNotSatisfiable(StorageProxyError):
    status, code, title = 416, "range-not-satisfiable", "Range not satisfiable"

    @property
    def headers(self) -> dict[str, str]:
        size = self.extra.get("size")
        return {} if size is None else {"Content-Range": f"bytes */{size}"}


class ChecksumMismatch(StorageProxyError):
    status, code, title = 460, "checksum-mismatch", "Checksum mismatch"


class QuotaExceeded(StorageProxyError):
    status, code, title = 413, "quota-exceeded", "Quota exceeded"


class QuotaScopeNotEmpty(StorageProxyError):
    status, code, title = 409, "quota-scope-not-empty", "Quota scope still holds vfolders"


class InsufficientStorage(StorageProxyError):
    status, code, title = 507, "insufficient-storage", "The volume is out of space"


class NotSupported(StorageProxyError):
    status, code, title = 501, "not-supported", "Operation not supported by this backend"

    def __init__(self, operation: str, backend: str) -> None:
        super().__init__(f"{operation!r} is not supported by the {backend!r} backend")


class UnsupportedOperation(StorageProxyError):
    """What a volume's backend cannot report or do, as Backend.AI answers it (a 400: the request
    named the wrong volume for it), unlike :class:`NotSupported` for an operation of ours."""

    status, code, title = 400, "unsupported-operation", "Not supported by this volume's backend"


class BackendUnavailable(StorageProxyError):
    status, code, title = 503, "backend-unavailable", "Storage backend unavailable"


class TooManyRequests(StorageProxyError):
    """A caller already runs as many costly operations (listings, archives) as it may at once."""

    status, code, title = 429, "too-many-requests", "Too many costly requests at once"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ConfigError(Exception):
    """Invalid configuration; the CLI exits with status 2 and prints the message."""


class PluginError(Exception):
    """A volume backend cannot be found or loaded."""
