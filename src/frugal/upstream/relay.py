"""Relaying a request to the provider as it is: the routes frugal does not serve itself.

The request body streams to the provider as it arrives and the answer streams back as it comes
(raw bytes, in the provider's own ``content-encoding``); neither is held whole.

Headers that cross, toward the provider (`request_headers`): the client's own, less the
hop-by-hop ones (and those its ``connection`` names), ``host``, ``cookie``, ``expect``, every
header that can carry a key (``authorization``, ``proxy-authorization``, ``api-key``,
``x-api-key``), ``x-frugal-*``, ``x-request-id`` (frugal's own id is sent) and
``openai-organization``/``openai-project``: the upstream key decides which account pays and
whose files are seen, and a client must not steer the gateway's key to another of its
projects. The upstream key goes in ``Authorization``. ``accept-encoding`` is the client's, or
``identity`` when it sent none, so that bytes relayed unchanged are bytes the client can read.

Toward the client (`response_headers`): the provider's, less the hop-by-hop ones,
``set-cookie``, ``date`` and ``server`` (the gateway's server writes its own), ``alt-svc`` (it
names the provider's host), ``x-request-id`` (frugal's) and ``openai-organization``/
``openai-project`` (the gateway's account). ``content-length`` stays: the bytes are unchanged.

Retries follow `RetryPolicy`, for idempotent methods without a body only (`RETRIED_METHODS`):
a lost connection, a 429 or a 5xx is tried again after a backoff (at least the provider's
``Retry-After``; one longer than ``max_delay_s`` ends the retries), and whatever answer the last
try got is relayed as the provider sent it. A body is never sent twice (it is not kept), so
POST, PUT and PATCH are tried once; a read timeout is never retried.

httpx's failures become frugal's through `map_transport_error`: `UpstreamConnectionError`,
`UpstreamTimeoutError`. A path that would leave the provider's API base (a ``.`` or ``..``
segment, even percent-encoded) is `InvalidRequestError`, and nothing is sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from frugal.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from frugal.upstream.client import (
    RETRYABLE_STATUS,
    RetryPolicy,
    _upstream_message,
    map_transport_error,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

# Safe to send again, and sent again only when they carry no body.
RETRIED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})

# RFC 9110 7.6.1, with the older names still seen in the wild.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_ACCOUNT = frozenset({"openai-organization", "openai-project"})
_NOT_SENT = (
    _HOP_BY_HOP
    | _ACCOUNT
    | {
        "host",
        "cookie",
        "expect",  # httpx sends the body at once; the gateway's server answered any 100-continue
        "authorization",
        "api-key",  # Azure OpenAI's key header
        "x-api-key",
        "x-request-id",
        "accept-encoding",  # set below, always
    }
)
_NOT_RETURNED = _HOP_BY_HOP | _ACCOUNT | {"set-cookie", "date", "server", "alt-svc", "x-request-id"}
_FRUGAL_PREFIX = "x-frugal-"
# A path, without a query or a fragment (those would be read as such, not as the path).
_PLAIN = re.compile(r"^[^?#]*$")


def request_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers that go on to the provider (see the module's docstring), in order;
    names lower-cased. ``accept-encoding`` is added: the client's, or ``identity``."""
    given = [(name.lower(), value) for name, value in headers]
    dropped = _NOT_SENT | _named_by_connection(given)
    kept = [
        (name, value)
        for name, value in given
        if name not in dropped and not name.startswith(_FRUGAL_PREFIX)
    ]
    encodings = [value for name, value in given if name == "accept-encoding"]
    kept.append(("accept-encoding", ", ".join(encodings) if encodings else "identity"))
    return kept


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The provider's headers that go back to the client (see the module's docstring)."""
    given = [(name.lower(), value) for name, value in headers]
    dropped = _NOT_RETURNED | _named_by_connection(given)
    return [(name, value) for name, value in given if name not in dropped]


def _named_by_connection(headers: list[tuple[str, str]]) -> set[str]:
    """Headers that ``connection`` declares hop-by-hop for this hop only."""
    return {
        token.strip().lower()
        for name, value in headers
        if name == "connection"
        for token in value.split(",")
        if token.strip()
    }


def has_body(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a request with these headers carries a body (HTTP/1.1 framing: a
    ``transfer-encoding``, or a ``content-length`` above 0)."""
    for name, value in headers:
        name = name.lower()
        if name == "transfer-encoding" or (name == "content-length" and value.strip() != "0"):
            return True
    return False


@dataclass
class RelayedResponse:
    """The provider's answer, open: its status and headers are here, its body is not read yet.

    Iterate for the raw body as it arrives (a failure on the way raises `UpstreamError`), or
    `aread` it whole; `aclose` always.
    """

    response: httpx.Response
    tries: int  # 1, or more when a bodiless idempotent request was retried

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The headers to relay (`response_headers`)."""
        return response_headers(self.response.headers.multi_items())

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            raise map_transport_error(exc) from None

    async def aread(self) -> bytes:
        """The whole body, decoded from its ``content-encoding`` (for answers frugal reads)."""
        try:
            return await self.response.aread()
        except httpx.TransportError as exc:
            raise map_transport_error(exc) from None

    def status_error(self, body: bytes) -> UpstreamStatusError:
        """This answer (of an error status, its body read) as the error frugal raises for
        a provider's error everywhere: its status, body and ``Retry-After`` kept."""
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            parsed = None
        return UpstreamStatusError(
            _upstream_message(self.status_code, parsed),
            upstream_status=self.status_code,
            upstream_body=parsed if isinstance(parsed, dict) else None,
            retry_after_s=parse_retry_after(self.response.headers.get("retry-after")),
        )

    async def aclose(self) -> None:
        await self.response.aclose()


class Relay:
    """Sends requests to the provider at ``base_url`` (for example ``http://host:9000/v1``)
    with the upstream key, on an `httpx.AsyncClient` of its own (long uploads and downloads
    then hold none of the cached routes' connections).

    >>> relay = Relay(http=httpx.AsyncClient(), base_url="http://host:9000/v1", api_key="sk-...")
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._base = httpx.URL(base_url.rstrip("/"))
        self._auth = [("authorization", f"Bearer {api_key}")] if api_key else []
        self._retry = retry or RetryPolicy()
        self.retries = 0  # tries beyond the first, since start

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        body: AsyncIterable[bytes] | None = None,
        request_id: str,
    ) -> RelayedResponse:
        """Send ``method path?query`` with the client's ``headers`` (filtered by
        `request_headers`) and ``body`` (streamed, never kept), and return the provider's
        answer once its headers have arrived, whatever its status.

        ``path`` is below the API base, percent-encoded as on the wire (``/files/file-abc``).
        Raises `InvalidRequestError` for a path that leaves the base, `UpstreamError` when no
        answer came; an exception the ``body`` raises (a size limit) passes through as it is.
        """
        url = self._url(path, query)
        sent = [*request_headers(headers), *self._auth, ("x-request-id", request_id)]
        method = method.upper()
        tries = self._retry.max_retries + 1 if body is None and method in RETRIED_METHODS else 1
        for number in range(tries):
            last = number == tries - 1
            request = self._http.build_request(method, url, headers=sent, content=body)
            # httpx adds what its cookie jar took from earlier answers: a cookie the provider
            # set on one client's answer must not go out with another client's request.
            request.headers.pop("cookie", None)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error = map_transport_error(exc)
                if last or isinstance(error, UpstreamTimeoutError):
                    raise error from None
                wait_s = self._retry.backoff_s(number)
            else:
                if last or response.status_code not in RETRYABLE_STATUS:
                    return RelayedResponse(response, tries=number + 1)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if retry_after is not None and retry_after > self._retry.max_delay_s:
                    return RelayedResponse(response, tries=number + 1)
                await response.aclose()
                wait_s = max(self._retry.backoff_s(number), retry_after or 0.0)
                error = UpstreamError(f"upstream answered {response.status_code}")
            logger.info(
                "relayed %s %s failed (%s); retry %d of %d in %.2f s",
                method,
                url.path,
                error.message,
                number + 1,
                tries - 1,
                wait_s,
            )
            self.retries += 1
            await self._retry.sleep(wait_s)
        raise AssertionError("unreachable")

    def _url(self, path: str, query: bytes) -> httpx.URL:
        path = "/" + path.lstrip("/")
        segments = path.split("/")
        if any(unquote(segment) in (".", "..") for segment in segments) or not _PLAIN.match(path):
            raise InvalidRequestError(f"Invalid path: {path[:200]!r}.")
        url = httpx.URL(str(self._base) + path)
        if query:
            url = url.copy_with(query=query)
        base = self._base.raw_path.rstrip(b"/")
        if not url.raw_path.startswith(base + b"/"):  # belt and braces: the base is never left
            raise InvalidRequestError(f"Invalid path: {path[:200]!r}.")
        return url
