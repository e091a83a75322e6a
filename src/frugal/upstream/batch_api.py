"""The provider's Files and Batch APIs, as the deferred tier uses them.

`ProviderBatches` uploads a JSONL file (purpose ``batch``), creates a batch of it, reads and
cancels it, and downloads its output and error files to disk (streamed, never held whole). The
upstream key goes in ``Authorization`` and nowhere else. httpx's failures become frugal's
through `map_transport_error`; a status other than 2xx is `UpstreamStatusError` with the
provider's status and body (a 404 on `create` means the provider has no Batch API).

Reads (`retrieve`, `download`) and the upload are retried as `RetryPolicy` says (a lost
connection, 429, 5xx); `create` and `cancel` are tried once: a second batch would be paid twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from frugal.errors import UpstreamConnectionError, UpstreamError, UpstreamStatusError
from frugal.upstream.client import (
    RETRYABLE_STATUS,
    RetryPolicy,
    _upstream_message,
    map_transport_error,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ProviderBatches:
    """The Files and Batch APIs of the provider at ``base_url`` (``http://host/v1``)."""

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

    async def upload(self, path: Path, *, filename: str) -> str:
        """Upload the file at ``path`` for a batch; its provider file id."""

        async def attempt() -> dict[str, Any]:
            with path.open("rb") as source:
                files = {"file": (filename, source, "application/jsonl")}
                return await self._json("POST", "/files", data={"purpose": "batch"}, files=files)

        answer = await self._retried(attempt, "upload")
        return _string(answer, "id")

    async def create(
        self, input_file_id: str, *, endpoint: str, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Create a batch of an uploaded file (window ``24h``, the only one OpenAI offers)."""
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
        }
        if metadata:
            body["metadata"] = metadata
        return await self._json("POST", "/batches", json=body)

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return await self._retried(lambda: self._json("GET", f"/batches/{batch_id}"), "retrieve")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/batches/{batch_id}/cancel")

    async def download(self, file_id: str, destination: Path) -> None:
        """Write the content of the provider's file ``file_id`` to ``destination``."""

        async def attempt() -> None:
            url = f"{self._base_url}/files/{file_id}/content"
            try:
                async with self._http.stream("GET", url, headers=self._auth) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise _status_error(response)
                    with destination.open("wb") as out:
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
            except httpx.TransportError as exc:
                raise map_transport_error(exc) from None

        await self._retried(attempt, "download")

    async def _json(self, method: str, path: str, **sent: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, self._base_url + path, headers=self._auth, **sent
            )
        except httpx.TransportError as exc:
            raise map_transport_error(exc) from None
        if not 200 <= response.status_code < 300:
            raise _status_error(response)
        try:
            payload = response.json()
        except ValueError:
            raise UpstreamConnectionError("the upstream answered with invalid JSON") from None
        if not isinstance(payload, dict):
            raise UpstreamConnectionError("the upstream answered with a non-object JSON body")
        return payload

    async def _retried(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        policy = self._retry
        for number in range(policy.max_retries + 1):
            try:
                return await attempt()
            except UpstreamError as exc:
                status = exc.upstream_status if isinstance(exc, UpstreamStatusError) else None
                retryable = status is None or status in RETRYABLE_STATUS
                if number == policy.max_retries or not retryable:
                    raise
                wait_s = policy.backoff_s(number)
                if isinstance(exc, UpstreamStatusError) and exc.retry_after_s is not None:
                    wait_s = max(wait_s, min(exc.retry_after_s, policy.max_delay_s))
                logger.info("provider batch %s failed (%s); retrying", what, exc.message)
                await policy.sleep(wait_s)
        raise AssertionError("unreachable")


def _status_error(response: httpx.Response) -> UpstreamStatusError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return UpstreamStatusError(
        _upstream_message(response.status_code, body),
        upstream_status=response.status_code,
        upstream_body=body if isinstance(body, dict) else None,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
    )


def _string(answer: dict[str, Any], name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise UpstreamConnectionError(f"the upstream's answer has no {name}")
    return value
