"""Request parameters: JSON body and query string merged, then validated by trafaret.

Backend.AI's manager sends JSON bodies even on GET; people and scripts use query strings.
Both work; body keys win over query keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trafaret as t
from aiohttp import web

from ..core.errors import InvalidParameter, MalformedBody, StorageProxyError
from ..core.paths import RelPath
from ..core.snapshot_policy import SnapshotPolicy
from ..core.types import QuotaScopeID, VFolderID
from ..core.units import Duration


class _Parse(t.Trafaret):  # type: ignore[misc]
    """Run a parser; domain errors (e.g. InvalidPath) pass through with their own code."""

    def __init__(self, func: Callable[[Any], Any], what: str) -> None:
        super().__init__()
        self._func = func
        self._what = what

    def check_and_return(self, value: Any) -> Any:
        try:
            return self._func(value)
        except StorageProxyError as e:
            if type(e) is InvalidParameter:
                self._failure(e.detail, value=value)
            raise
        except (TypeError, ValueError) as e:
            self._failure(f"expected {self._what}: {e}", value=value)


def VFolderIDField() -> t.Trafaret:  # noqa: N802
    return _Parse(VFolderID.parse, "'<quota-scope-id>/<uuid-hex>'")


def QuotaScopeIDField() -> t.Trafaret:  # noqa: N802
    return _Parse(QuotaScopeID.parse, "'user:<uuid>' or 'project:<uuid>'")


def RelPathField(*, allow_root: bool = True) -> t.Trafaret:  # noqa: N802
    return t.String(allow_blank=True) & _Parse(
        lambda v: RelPath.parse(v, allow_root=allow_root), "a relative path"
    )


#: A snapshot policy's fields (``every``: a duration such as "1h"), as both doors take them.
SNAPSHOT_POLICY_KEYS = {
    t.Key("every"): Duration(),
    t.Key("keep_last", default=0): t.ToInt(gte=0),
    t.Key("keep_daily", default=0): t.ToInt(gte=0),
}


def snapshot_policy(params: dict[str, Any]) -> SnapshotPolicy:
    """The policy of parameters read with :data:`SNAPSHOT_POLICY_KEYS` (its rules checked)."""
    every = params["every"].total_seconds()
    return SnapshotPolicy.from_seconds(every, params["keep_last"], params["keep_daily"])


QuotaConfigField = t.Dict({t.Key("limit_bytes"): t.ToInt(gte=0)}).allow_extra("*")


def parse_json(raw: bytes | str, what: str = "the request body") -> Any:
    """JSON from a client: anything malformed (bad syntax or encoding, nesting too deep for the
    parser) is a 400, never a crash."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        reason = "it nests too deeply" if isinstance(e, RecursionError) else str(e)
        raise InvalidParameter(f"{what} is not valid JSON: {reason}") from None


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (empty body: ``{}``)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return body


async def read_params(
    request: web.Request, schema: t.Trafaret, *, body_required: bool = False
) -> dict[str, Any]:
    """The parameters from the query string and the JSON body; ``body_required``: an empty body
    is :class:`MalformedBody` (as Backend.AI's pydantic routes answer it)."""
    data: dict[str, Any] = dict(request.query)
    body = await json_object(request) if request.body_exists else {}
    if body_required and not body:
        raise MalformedBody("a JSON object is required as the request body")
    data.update(body)
    try:
        result: dict[str, Any] = schema.check(data)
    except t.DataError as e:
        raise InvalidParameter("invalid request parameters", errors=e.as_dict(value=True)) from None
    return result
