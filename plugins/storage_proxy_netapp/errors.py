"""ONTAP failures as domain errors (503 to callers: the filer, not the request, is at fault).

The kinds are the shared REST client's (:mod:`storage_proxy.volumes.rest`), so callers may catch
either the ONTAP class or the generic one (``OntapAuthError`` is a ``RestAuthError``).
"""

from __future__ import annotations

from typing import Any

from storage_proxy.volumes.rest import (
    ErrorInfo,
    ErrorKinds,
    RestAuthError,
    RestError,
    RestMalformed,
    RestNotFound,
    RestRejected,
    RestUnreachable,
)


class OntapError(RestError):
    """An ONTAP error body ``{"error": {"message", "code", "target"}}`` or a failed job."""

    @property
    def ontap_code(self) -> str | None:
        return self.vendor_code


class OntapAuthError(OntapError, RestAuthError):
    """401/403: the configured user or password is wrong or lacks the role."""


class OntapNotFound(OntapError, RestNotFound):
    """404: the object is not there."""


class OntapRejected(OntapError, RestRejected):
    """Another 4xx: ONTAP refused the request."""


class OntapUnreachable(OntapError, RestUnreachable):
    """No answer from the cluster management address."""


class OntapMalformed(OntapError, RestMalformed):
    """An answer not in ONTAP's documented shape."""


class OntapJobFailed(OntapError):
    """A job ended in ``failure``."""


class OntapJobTimeout(OntapError):
    """A job did not finish within ``job-timeout``."""


ONTAP_ERRORS = ErrorKinds(
    server=OntapError,
    auth=OntapAuthError,
    not_found=OntapNotFound,
    rejected=OntapRejected,
    unreachable=OntapUnreachable,
    malformed=OntapMalformed,
)


def ontap_error_body(body: Any) -> ErrorInfo:
    """``{"error": {"message", "code", "target"}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "", None, None
    code = err.get("code")
    return str(err.get("message", "")), None if code is None else str(code), err.get("target")
