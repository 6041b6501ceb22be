"""The ``vast`` volume backend: VAST Data over NFS, quotas on paths through the VMS REST API."""

from __future__ import annotations

from .volume import VastVolume

__all__ = ["VastVolume"]
