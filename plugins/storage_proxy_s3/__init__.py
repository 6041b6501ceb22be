"""The ``s3`` backend: one bucket (plus a key prefix) on any S3-compatible endpoint.

AWS S3, MinIO and Ceph RGW alike; quotas are enforced by the proxy, resumable uploads are staged
locally and published by multipart upload, and the data proxy gets native presigned URLs.
"""

from __future__ import annotations

from .volume import S3Volume

__all__ = ["S3Volume"]
