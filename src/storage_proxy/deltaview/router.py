"""The one place an operation id is resolved from method + path shape (as lakeFS's gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from multidict import MultiMapping

from .config import BUCKET
from .errors import S3Error, S3ErrorCode


class Op(StrEnum):
    LIST_BUCKETS = "ListBuckets"
    HEAD_BUCKET = "HeadBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    PUT_OBJECT = "PutObject"
    DELETE_OBJECT = "DeleteObject"
    OTHER_WRITE = "OtherWrite"  # POST, bucket-level writes: refused or not implemented


WRITES = {"PUT", "POST", "DELETE"}


@dataclass(frozen=True)
class Target:
    op: Op
    bucket: str | None
    key: str | None


def resolve(method: str, path: str, query: MultiMapping[str]) -> Target:
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        if method == "GET":
            return Target(Op.LIST_BUCKETS, None, None)
        raise S3Error(S3ErrorCode.METHOD_NOT_ALLOWED)
    if method in WRITES and method != "POST" and key:
        op = Op.PUT_OBJECT if method == "PUT" else Op.DELETE_OBJECT
        return Target(op, bucket, key)
    if method in WRITES:
        return Target(Op.OTHER_WRITE, bucket, key or None)
    if bucket != BUCKET:
        raise S3Error(S3ErrorCode.NO_SUCH_BUCKET)
    if not key:
        if method == "HEAD":
            return Target(Op.HEAD_BUCKET, bucket, None)
        if method == "GET" and "location" in query:
            return Target(Op.GET_BUCKET_LOCATION, bucket, None)
        if method == "GET" and "list-type" not in query:
            return Target(Op.LIST_OBJECTS, bucket, None)
        if method == "GET" and query.get("list-type") == "2":
            return Target(Op.LIST_OBJECTS_V2, bucket, None)
        if method == "GET":
            raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "list-type must be 2 (or absent).")
    elif method == "GET":
        return Target(Op.GET_OBJECT, bucket, key)
    elif method == "HEAD":
        return Target(Op.HEAD_OBJECT, bucket, key)
    raise S3Error(S3ErrorCode.METHOD_NOT_ALLOWED)
