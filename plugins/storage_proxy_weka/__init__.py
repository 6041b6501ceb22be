"""The ``weka`` volume backend: WekaFS, directory quotas through the WEKA REST API."""

from __future__ import annotations

from .volume import WekaVolume

__all__ = ["WekaVolume"]
