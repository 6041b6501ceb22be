"""ONTAP failures as domain errors (503 to callers: the filer, not the request, is at fault)."""

from __future__ import annotations

from typing import Any

from storage_proxy.core.errors import BackendUnavailable


class OntapError(BackendUnavailable):
    """An ONTAP error body ``{"error": {"message", "code", "target"}}`` or a failed job."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        ontap_code: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.ontap_code = ontap_code
        self.target = target

    @classmethod
    def from_body(cls, status: int, body: Any, what: str) -> OntapError:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(f"ONTAP answered {status} to {what}", http_status=status)
        kind = OntapAuthError if status in (401, 403) else OntapNotFound if status == 404 else cls
        return kind(
            f"ONTAP answered {status} to {what}: {err.get('message', '')}",
            http_status=status,
            ontap_code=str(err["code"]) if err.get("code") is not None else None,
            target=err.get("target"),
        )


class OntapAuthError(OntapError):
    """401/403: the configured user or password is wrong or lacks the role."""


class OntapNotFound(OntapError):
    """404: the object is not there."""


class OntapJobFailed(OntapError):
    """A job ended in ``failure``."""


class OntapJobTimeout(OntapError):
    """A job did not finish within ``job-timeout``."""
