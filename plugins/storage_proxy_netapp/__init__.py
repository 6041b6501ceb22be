"""The ``netapp`` volume backend: NFS data path, ONTAP REST quotas (see ``volume.py``)."""

from __future__ import annotations

from .volume import NetAppVolume

__all__ = ["NetAppVolume"]
