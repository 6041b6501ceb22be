"""An async client for storage vendors' management REST APIs, shared by every vendor backend.

What each of those APIs needs, written once:

* **authentication** as the vendor documents it (:class:`BasicAuth`, a fixed token header
  :class:`TokenAuth`, or a :class:`SessionAuth` that logs in for a session token and logs in
  again when the vendor says the session expired);
* **retries** with exponential backoff on 5xx answers and connection failures, only where a
  repeat is safe (a POST is repeated only on the statuses a vendor declares "not applied");
* **TLS verification on by default** (``verify-ssl = false`` only when set; a CA file may be
  named instead);
* **timeouts** on every request (connect and total), so a hung endpoint is an error, not a hang;
* **pagination** helpers (:func:`token_pager`, :func:`link_pager`) for the vendors' styles;
* **errors as domain errors**: every failure is a :class:`RestError` (a
  :class:`~storage_proxy.errors.BackendUnavailable`, 503: the storage is at fault, not the
  request), split by meaning -- credentials refused, not found, rejected, unreachable, malformed;
* **no credentials in any log line or exception text**: every message this module builds is
  scrubbed of the secrets the authenticator holds (passwords, API tokens, session tokens), even
  when a vendor echoes one back in an error body.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..core.errors import BackendUnavailable

log = logging.getLogger(__name__)

Json = dict[str, Any]
Params = Mapping[str, str | int | bool]
#: (message, vendor code, target) read from an error body; None where the body has none.
ErrorInfo = tuple[str, str | None, str | None]

_MAX_PAGES = 100_000
_SNIPPET = 200
_IDEMPOTENT_RETRY = frozenset({500, 502, 503, 504})


# -- errors --------------------------------------------------------------------------------------
class RestError(BackendUnavailable):
    """A vendor's management API failed (503 to callers: the storage is at fault)."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        vendor_code: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.vendor_code = vendor_code
        self.target = target


class RestAuthError(RestError):
    """401/403: the configured credentials are wrong or lack the role."""


class RestNotFound(RestError):
    """404: the object is not there."""


class RestRejected(RestError):
    """Another 4xx (or a vendor's documented refusal): a bad value, a conflict, over a limit."""


class RestUnreachable(RestError):
    """No answer: connection refused, DNS, TLS verification, or a timeout."""


class RestMalformed(RestError):
    """An answer that is not what the vendor documents (not JSON, a missing field)."""


class _Final(Exception):
    """Carries a failure that a retry cannot cure (a certificate that does not verify)."""

    def __init__(self, error: RestError) -> None:
        self.error = error


@dataclass(frozen=True)
class ErrorKinds:
    """The exception classes one vendor's failures become (a vendor may bring its own)."""

    server: type[RestError] = RestError
    auth: type[RestError] = RestAuthError
    not_found: type[RestError] = RestNotFound
    rejected: type[RestError] = RestRejected
    unreachable: type[RestError] = RestUnreachable
    malformed: type[RestError] = RestMalformed

    def for_status(self, status: int) -> type[RestError]:
        if status in (401, 403):
            return self.auth
        if status == 404:
            return self.not_found
        if 400 <= status < 500:
            return self.rejected
        return self.server


def plain_error_body(body: Any) -> ErrorInfo:
    """The common error bodies: ``{"message"}``, ``{"detail"}``, ``{"error": {...}}`` and
    ``{"errors": [{...}]}``."""
    if isinstance(body, dict):
        for key in ("error", "errors"):
            inner = body.get(key)
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                inner = inner[0]
            if isinstance(inner, dict):
                code = inner.get("code")
                return (
                    str(inner.get("message", "")),
                    None if code is None else str(code),
                    inner.get("target") or inner.get("context") or inner.get("field"),
                )
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key], None, None
    if isinstance(body, str):
        return body[:_SNIPPET], None, None
    return "", None, None


# -- authentication ------------------------------------------------------------------------------
class Auth(ABC):
    """How requests are authenticated.  Holds credentials; never logs or formats them."""

    @property
    @abstractmethod
    def secrets(self) -> tuple[str, ...]:
        """Every value that must never appear in a log line or an error message."""

    @abstractmethod
    async def headers(self, client: RestClient) -> dict[str, str]:
        """Headers for one authenticated request (a session auth logs in first if needed)."""

    def session_expired(self, status: int, body: Any) -> bool:
        """Whether a refused request means "log in again" (only session auths can)."""
        return False

    async def relogin(self, client: RestClient, used: Mapping[str, str]) -> None:
        """Get a new session (unless another request already did since ``used`` was sent)."""


class BasicAuth(Auth):
    """HTTP basic authentication on every request."""

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._header = f"Basic {token}"
        self._password = password

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password, self._header.split()[1])

    async def headers(self, client: RestClient) -> dict[str, str]:
        return {"Authorization": self._header}


class TokenAuth(Auth):
    """A fixed token in a header, e.g. ``Authorization: Api-Token <t>`` or ``api-token: <t>``."""

    def __init__(self, token: str, *, header: str = "Authorization", scheme: str = "") -> None:
        self._token = token
        self._name = header
        self._value = f"{scheme} {token}" if scheme else token

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    async def headers(self, client: RestClient) -> dict[str, str]:
        return {self._name: self._value}


class SessionAuth(Auth):
    """Logs in for a session token and sends it on every request; logs in again on expiry.

    A subclass implements :meth:`login` (one request to the vendor's login endpoint, made with
    ``authenticate=False``) and :meth:`session_headers`.
    """

    def __init__(self, *secrets: str) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._session: str | None = None
        self._lock = asyncio.Lock()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets + ((self._session,) if self._session else ())

    @abstractmethod
    async def login(self, client: RestClient) -> str:
        """Log in; return the session token (raise RestAuthError if refused)."""

    @abstractmethod
    def session_headers(self, token: str) -> dict[str, str]: ...

    def session_expired(self, status: int, body: Any) -> bool:
        return status == 401

    async def headers(self, client: RestClient) -> dict[str, str]:
        async with self._lock:
            if self._session is None:
                self._session = await self.login(client)
            return self.session_headers(self._session)

    async def relogin(self, client: RestClient, used: Mapping[str, str]) -> None:
        async with self._lock:
            if self._session is not None and self.session_headers(self._session) == dict(used):
                self._session = None
                self._session = await self.login(client)

    def forget(self) -> None:
        """Drop the session (a closed client logs in afresh when reopened)."""
        self._session = None


# -- pagination ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    """One request of a paged listing."""

    path: str
    params: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class RestResponse:
    status: int
    headers: Mapping[str, str]
    body: Any


#: Given a page's answer and the request that got it, the next request (None: that was the last).
Pager = Callable[[RestResponse, Page, "RestClient"], Page | None]


def token_pager(
    body_key: str, param: str, *, header: str | None = None, keep_params: bool = True
) -> Pager:
    """A continuation token in the body (or a header) sent back as a query parameter.

    FlashBlade: ``continuation_token`` (also ``x-next-token``) with the same query; OneFS:
    ``resume`` sent alone (``keep_params=False``: "resume cannot be used with other options").
    """

    def next_page(resp: RestResponse, page: Page, client: RestClient) -> Page | None:
        token = resp.body.get(body_key) if isinstance(resp.body, dict) else None
        if not token and header:
            token = resp.headers.get(header)
        if not token:
            return None
        if not isinstance(token, str):
            raise client.malformed(f"a {body_key} that is not a string", page.path)
        params = {**page.params} if keep_params else {}
        if params.get(param) == token:
            raise client.malformed("the same continuation token twice", page.path)
        params[param] = token
        return Page(page.path, params)

    return next_page


def link_pager(extract: Callable[[Any], Any]) -> Pager:
    """A link to the next page in the body (VAST's ``next``, ONTAP's ``_links.next.href``).

    The link must stay on the configured endpoint: credentials are never sent elsewhere.
    """

    def next_page(resp: RestResponse, page: Page, client: RestClient) -> Page | None:
        link = extract(resp.body)
        if not link:
            return None
        if not isinstance(link, str):
            raise client.malformed("a next-page link that is not a string", page.path)
        return client.page_from_link(link, page.path)

    return next_page


# -- the client ----------------------------------------------------------------------------------
class RestClient:
    """One vendor endpoint: authenticated JSON requests with retries, timeouts and paging."""

    def __init__(
        self,
        vendor: str,
        endpoint: str,
        auth: Auth,
        *,
        error_body: Callable[[Any], ErrorInfo] = plain_error_body,
        kinds: ErrorKinds = ErrorKinds(),
        verify_ssl: bool = True,
        ca_file: str | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        retry_statuses: frozenset[int] = _IDEMPOTENT_RETRY,
        post_retry_statuses: frozenset[int] = frozenset({503}),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url = URL(endpoint.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{vendor} endpoint must be an http(s) URL: {url.with_user(None)}")
        self.vendor = vendor
        self._base = url.with_user(None).with_password(None)
        self.endpoint = str(self._base)
        self.auth = auth
        self._error_body = error_body
        self.kinds = kinds
        self._ssl: ssl.SSLContext | bool = True
        if not verify_ssl:
            self._ssl = False
        elif ca_file:
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=connect_timeout)
        self.retries = retries
        self.backoff = backoff
        self._retry = retry_statuses
        self._post_retry = post_retry_statuses
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=self._timeout,
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if isinstance(self.auth, SessionAuth):
            self.auth.forget()

    # -- messages --------------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """``text`` with every credential the authenticator holds replaced by ``***``."""
        for secret in sorted(self.auth.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def error(self, kind: type[RestError], message: str, **kw: Any) -> RestError:
        return kind(self.scrub(f"{self.vendor} at {self.endpoint} {message}"), **kw)

    def malformed(self, what: str, path: str) -> RestError:
        return self.error(self.kinds.malformed, f"answered {path} with {what}")

    def page_from_link(self, link: str, where: str) -> Page:
        """A request for a link the vendor returned, if it stays on this endpoint."""
        url = self._base.join(URL(link))
        if url.origin() != self._base.origin():
            raise self.malformed(f"a next-page link to another host ({url.origin()})", where)
        path, prefix = url.path, self._base.path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return Page(path, dict(url.query))

    # -- requests --------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        authenticate: bool = True,
        expect_json: bool = True,
        headers: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
    ) -> RestResponse:
        """One call, retried when that is safe; failures become the vendor's RestError kinds.

        ``path`` is below the endpoint (``/api/...``).  A refused session is renewed once.
        ``repeatable``: whether a repeat is harmless (default: any method but POST; a login
        POST is).
        """
        if repeatable is None:
            repeatable = method != "POST"
        what = f"{method} {path}"
        relogged = False
        attempt = 0
        while True:
            sent = await self.auth.headers(self) if authenticate else {}
            try:
                status, got, body = await self._send(
                    method, path, params, json, {**(headers or {}), **sent}
                )
            except _Final as e:
                raise e.error from None
            except RestUnreachable as e:
                if not repeatable or attempt >= self.retries:
                    raise
                log.warning("%s; retrying", e.detail)
            else:
                if status < 400:
                    return RestResponse(status, got, self._decode(body, what, expect_json))
                data = self._decode(body, what, expect_json=False)
                if authenticate and not relogged and self.auth.session_expired(status, data):
                    relogged = True
                    await self.auth.relogin(self, sent)
                    continue
                retry_on = self._retry if repeatable else self._post_retry
                if status not in retry_on or attempt >= self.retries:
                    raise self._failure(status, data, what)
                log.warning("%s answered %s to %s; retrying", self.vendor, status, self.scrub(what))
            await asyncio.sleep(self.backoff * 2**attempt)
            attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        json: Any,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        await self.open()
        assert self._session is not None
        query = {k: _query_value(v) for k, v in (params or {}).items()}
        url = self._base.with_path(self._base.path.rstrip("/") + "/" + path.lstrip("/"))
        try:
            async with self._session.request(
                method, url, params=query, json=json, headers=headers
            ) as resp:
                return resp.status, CIMultiDict(resp.headers), await resp.read()
        except aiohttp.ClientSSLError as e:
            what = f"unreachable for {method} {path}: TLS failed ({e!r})"
            raise _Final(self.error(self.kinds.unreachable, what)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            reason = "no answer within the timeout" if isinstance(e, TimeoutError) else repr(e)
            raise self.error(
                self.kinds.unreachable, f"unreachable for {method} {path}: {reason}"
            ) from None

    def _decode(self, body: bytes, what: str, expect_json: bool) -> Any:
        if not body.strip():
            return None
        try:
            return jsonlib.loads(body)
        except ValueError:
            if expect_json:
                raise self.malformed("a body that is not JSON", what) from None
            return body[:_SNIPPET].decode(errors="replace")

    def _failure(self, status: int, data: Any, what: str) -> RestError:
        message, code, target = self._error_body(data)
        detail = f": {message}" if message else ""
        return self.error(
            self.kinds.for_status(status),
            f"answered {status} to {what}{detail}",
            http_status=status,
            vendor_code=code,
            target=target,
        )

    # -- conveniences ----------------------------------------------------------------------------
    async def get(self, path: str, params: Params | None = None) -> Any:
        return (await self.request("GET", path, params=params)).body

    async def collect(
        self,
        page: Page,
        *,
        items: str | Callable[[Any], Any],
        next_page: Pager,
    ) -> list[Json]:
        """Every item of a paged listing: ``items`` names the list in each page's body."""
        out: list[Json] = []
        current: Page | None = page
        for _ in range(_MAX_PAGES):
            if current is None:
                return out
            resp = await self.request("GET", current.path, params=current.params)
            found = resp.body.get(items) if isinstance(items, str) else items(resp.body)
            if isinstance(items, str) and not isinstance(resp.body, dict):
                found = None
            if found is None:
                found = []
            if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
                raise self.malformed(f"no list of objects in {items!r}", current.path)
            out.extend(found)
            current = next_page(resp, current, self)
        raise self.malformed(f"more than {_MAX_PAGES} pages", page.path)


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def obj(value: Any) -> Json:
    """``value`` if it is a JSON object, else an empty one (for optional nested fields)."""
    return value if isinstance(value, dict) else {}


def optional_number(client: RestClient, value: Any, what: str) -> int | None:
    """An integer field that may be absent (``None``)."""
    return None if value is None else number(client, value, what)


def number(client: RestClient, value: Any, what: str) -> int:
    """An integer field of a vendor answer (JSON numbers or numeric strings, as OneFS sends)."""
    if isinstance(value, bool) or value is None:
        raise client.malformed(f"no number for {what}", what)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise client.malformed(f"{what} = {str(value)[:40]!r}, not a number", what) from None
