"""The ``xfs`` volume backend: quota scopes as XFS projects (see ``volume.py``)."""

from __future__ import annotations

from .volume import XfsVolume

__all__ = ["XfsVolume"]
