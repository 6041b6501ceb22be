"""The ``ddn`` volume backend: EXAScaler (Lustre), project quotas through ``lfs``."""

from __future__ import annotations

from .volume import DdnVolume

__all__ = ["DdnVolume"]
