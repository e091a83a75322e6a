"""`frugal cache ...`: the admin routes of a running gateway, from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class AdminClient:
    """Talks to ``/admin/*`` with the admin key; raises `httpx.HTTPStatusError` on failure."""

    def __init__(self, url: str, admin_key: str, *, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=timeout_s,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/admin/stats")

    def entries(self, *, offset: int, limit: int, tenant: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if tenant is not None:
            params["tenant"] = tenant
        return list(self._call("GET", "/admin/cache/entries", params=params)["data"])

    def invalidate(self, selector: dict[str, Any]) -> int:
        return int(self._call("POST", "/admin/cache/invalidate", json=selector)["invalidated"])

    def shadow_report(self) -> dict[str, Any]:
        return self._call("GET", "/admin/shadow/report")

    def flush(self) -> int:
        return int(self._call("DELETE", "/admin/cache")["flushed"])

    def labels(self) -> Iterator[bytes]:
        """The labelled pairs as JSON lines, streamed in chunks as they arrive."""
        with self._http.stream("GET", "/admin/cache/labels") as response:
            if response.is_error:
                response.read()  # the error body, for the message
                response.raise_for_status()
            yield from response.iter_bytes()

    def reembed(self) -> Iterator[dict[str, Any]]:
        """Re-embed the entries of other embedding models: each progress line as it arrives
        (``done``, ``total``, ``reembedded``, ``model``; or ``error``, last, when it failed)."""
        with self._http.stream("POST", "/admin/cache/reembed") as response:
            if response.is_error:
                response.read()  # the error body, for the message
                response.raise_for_status()
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
