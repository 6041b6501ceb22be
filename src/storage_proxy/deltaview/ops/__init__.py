"""One small module per S3 operation; HANDLERS is the dispatch table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..context import Call
from ..router import Op
from . import (
    delete_object,
    get_object,
    head_bucket,
    head_object,
    list_buckets,
    list_objects,
    other_write,
    put_object,
)

Handler = Callable[[Call], Awaitable[web.StreamResponse]]

HANDLERS: dict[Op, Handler] = {
    Op.LIST_BUCKETS: list_buckets.handle,
    Op.HEAD_BUCKET: head_bucket.handle,
    Op.GET_BUCKET_LOCATION: head_bucket.location,
    Op.LIST_OBJECTS: list_objects.handle_v1,
    Op.LIST_OBJECTS_V2: list_objects.handle,
    Op.GET_OBJECT: get_object.handle,
    Op.HEAD_OBJECT: head_object.handle,
    Op.PUT_OBJECT: put_object.handle,
    Op.DELETE_OBJECT: delete_object.handle,
    Op.OTHER_WRITE: other_write.handle,
}
