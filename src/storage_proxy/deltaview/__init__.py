"""The Delta Lake S3 view: an S3-compatible, partition-gated, read-only window onto Delta tables.

Layout (lakeFS-style): ``router`` resolves an operation id from method + path shape, ``ops/`` holds
one small module per S3 operation, ``sigv4`` checks signatures, ``errors`` pairs S3 codes with HTTP
statuses, ``store`` talks to the backend S3 (wrapped by ``readonly``), ``deltalog`` reads the Delta
log and ``gate`` decides which files a caller may read.
"""

from .config import DeltaViewConfig, validate

__all__ = ["DeltaViewConfig", "validate"]
