"""The ``dellemc-onefs`` volume backend: PowerScale OneFS over NFS, SmartQuotas by REST."""

from __future__ import annotations

from .volume import OneFSVolume

__all__ = ["OneFSVolume"]
