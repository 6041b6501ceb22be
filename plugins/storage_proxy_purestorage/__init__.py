"""The ``purestorage`` volume backend: FlashBlade over NFS, a file system per quota scope."""

from __future__ import annotations

from .volume import PureStorageVolume

__all__ = ["PureStorageVolume"]
