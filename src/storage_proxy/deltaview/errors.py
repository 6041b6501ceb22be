"""S3 errors as one enum pairing the S3 code, the HTTP status and a default message."""

from __future__ import annotations

from enum import Enum


class S3ErrorCode(Enum):
    ACCESS_DENIED = ("AccessDenied", 403, "Access Denied")
    INVALID_ACCESS_KEY_ID = (
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    )
    SIGNATURE_DOES_NOT_MATCH = (
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided.",
    )
    REQUEST_TIME_TOO_SKEWED = (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the server's time is too large.",
    )
    INVALID_ARGUMENT = ("InvalidArgument", 400, "Invalid Argument")
    INVALID_REQUEST = ("InvalidRequest", 400, "Invalid Request")
    INVALID_RANGE = ("InvalidRange", 416, "The requested range is not satisfiable")
    NO_SUCH_BUCKET = ("NoSuchBucket", 404, "The specified bucket does not exist")
    NO_SUCH_KEY = ("NoSuchKey", 404, "The specified key does not exist.")
    METHOD_NOT_ALLOWED = (
        "MethodNotAllowed",
        405,
        "The specified method is not allowed against this resource.",
    )
    NOT_IMPLEMENTED = (
        "NotImplemented",
        501,
        "A header or operation you provided implies functionality that is not implemented.",
    )
    SERVICE_UNAVAILABLE = ("ServiceUnavailable", 503, "The backend storage is unavailable.")
    INTERNAL_ERROR = ("InternalError", 500, "We encountered an internal error. Please try again.")

    def __init__(self, code: str, status: int, message: str) -> None:
        self.code = code
        self.status = status
        self.message = message


class S3Error(Exception):
    """Raised anywhere below the API layer; the middleware turns it into S3 XML."""

    def __init__(
        self,
        error: S3ErrorCode,
        message: str | None = None,
        *,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or error.message)
        self.error = error
        self.message = message or error.message
        #: a short machine label for the denial metric (``partition``, ``read-only`` …)
        self.reason = reason
        self.headers = headers or {}


def access_denied(reason: str, message: str | None = None) -> S3Error:
    return S3Error(S3ErrorCode.ACCESS_DENIED, message, reason=reason)
