"""The project-id registry (shared with the ddn backend: :mod:`storage_proxy.volumes.projects`)."""

from __future__ import annotations

from storage_proxy.volumes.projects import ProjectRegistry

__all__ = ["ProjectRegistry"]
