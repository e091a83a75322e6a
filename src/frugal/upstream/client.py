"""The OpenAI-compatible upstream client: one shared `httpx.AsyncClient`, retries, error mapping.

Retry policy (the provider's answer decides):
- connection errors (refused, reset, dropped before the first byte), 429 and 5xx are retried
  with jittered exponential backoff, at most ``max_retries`` times;
- a ``Retry-After`` from the provider is honoured: the wait is at least that long, and when it
  is longer than ``max_delay_s`` frugal stops retrying and passes the 429 on to the client;
- 4xx other than 429 are never retried (the request itself is wrong), nor are read timeouts
  (waiting again would only double the client's wait);
- a stream is retried only until its first chunk has arrived; once a byte has been relayed to
  the client nothing is retried.

This is the one place where httpx's exceptions are mapped onto frugal's (`map_transport_error`).
The API key is sent in the ``Authorization`` header and nowhere else: it is never part of a
message, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from frugal.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from frugal.provider import Endpoint

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def map_transport_error(exc: httpx.TransportError) -> UpstreamError:
    """Translate an httpx failure into frugal's tree. Every httpx error goes through here."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeoutError(f"the upstream did not answer in time ({type(exc).__name__})")
    return UpstreamConnectionError(f"the upstream could not be reached ({type(exc).__name__})")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


@dataclass
class RetryPolicy:
    """How often and how long to wait between tries; ``sleep`` is injectable for tests."""

    max_retries: int = 2
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (0-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass
class UpstreamStream:
    """An open upstream stream whose first chunk has already arrived.

    Iterating yields the raw bytes as they come; a failure mid-stream raises `UpstreamError`.
    """

    response: httpx.Response
    first_chunk: bytes
    _rest: AsyncIterator[bytes] = field(repr=False)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first_chunk
        try:
            async for chunk in self._rest:
                yield chunk
        except httpx.TransportError as exc:
            raise map_transport_error(exc) from None

    async def aclose(self) -> None:
        await self.response.aclose()


class _Retry(Exception):
    """Internal: this try failed in a way the policy may retry."""

    def __init__(self, error: UpstreamError, retry_after_s: float | None = None) -> None:
        self.error = error
        self.retry_after_s = retry_after_s


class OpenAIUpstream:
    """An OpenAI-compatible provider at ``base_url`` (for example ``http://host:9000/v1``)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._retry = retry or RetryPolicy()
        self.retries = 0  # tries beyond the first, since start

    async def post(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        """POST ``body`` to ``endpoint`` and return the JSON answer of a 200; else raise."""

        async def attempt() -> dict[str, Any]:
            try:
                response = await self._http.post(
                    self._base_url + endpoint, json=body, headers=self._headers(request_id)
                )
            except httpx.TransportError as exc:
                raise self._classify_transport(exc) from None
            if response.status_code != 200:
                raise self._classify_status(response)
            try:
                payload = response.json()
            except ValueError:
                raise UpstreamConnectionError("the upstream answered with invalid JSON") from None
            if not isinstance(payload, dict):
                raise UpstreamConnectionError("the upstream answered with a non-object JSON body")
            return payload

        return await self._with_retries(attempt, endpoint=endpoint)

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> UpstreamStream:
        """Open a streamed POST and wait for its first chunk (retrying until then)."""

        async def attempt() -> UpstreamStream:
            request = self._http.build_request(
                "POST", self._base_url + endpoint, json=body, headers=self._headers(request_id)
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise self._classify_transport(exc) from None
            try:
                if response.status_code != 200:
                    await response.aread()
                    raise self._classify_status(response)
                chunks = response.aiter_bytes()
                first = await anext(chunks, b"")
            except httpx.TransportError as exc:
                await response.aclose()
                raise self._classify_transport(exc) from None
            except BaseException:
                await response.aclose()
                raise
            return UpstreamStream(response=response, first_chunk=first, _rest=chunks)

        return await self._with_retries(attempt, endpoint=endpoint)

    def _headers(self, request_id: str) -> dict[str, str]:
        return {**self._auth, "x-request-id": request_id}

    @staticmethod
    def _classify_transport(exc: httpx.TransportError) -> UpstreamError | _Retry:
        error = map_transport_error(exc)
        return error if isinstance(error, UpstreamTimeoutError) else _Retry(error)

    @staticmethod
    def _classify_status(response: httpx.Response) -> UpstreamError | _Retry:
        try:
            body = response.json()
        except ValueError:
            body = None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        error = UpstreamStatusError(
            _upstream_message(response.status_code, body),
            upstream_status=response.status_code,
            upstream_body=body if isinstance(body, dict) else None,
            retry_after_s=retry_after,
        )
        if response.status_code in RETRYABLE_STATUS:
            return _Retry(error, retry_after)
        return error

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], *, endpoint: Endpoint) -> T:
        policy = self._retry
        for number in range(policy.max_retries + 1):
            try:
                return await attempt()
            except _Retry as retry:
                if number == policy.max_retries:
                    raise retry.error from None
                wait_s = policy.backoff_s(number)
                if retry.retry_after_s is not None:
                    if retry.retry_after_s > policy.max_delay_s:
                        raise retry.error from None
                    wait_s = max(wait_s, retry.retry_after_s)
                logger.info(
                    "upstream %s failed (%s); retry %d of %d in %.2f s",
                    endpoint,
                    retry.error.message,
                    number + 1,
                    policy.max_retries,
                    wait_s,
                )
                self.retries += 1
                await policy.sleep(wait_s)
        raise AssertionError("unreachable")


def _upstream_message(status: int, body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str):
            return f"upstream answered {status}: {message}"
    return f"upstream answered {status}"
