"""frugal's exception tree: every error frugal raises on purpose is one of these.

    FrugalError
    ├── RequestError                 the client's request cannot be served as sent
    │   ├── InvalidRequestError      malformed JSON, schema violation, bad header value
    │   ├── AuthenticationError      missing or wrong key
    │   ├── NotFoundError            unknown route or entry
    │   ├── RequestTimeoutError      the body came slower than FRUGAL_CLIENT_BODY_TIMEOUT_S
    │   ├── PayloadTooLargeError     the body is over FRUGAL_MAX_BODY_BYTES
    │   └── ClientDisconnectedError  the client left before its answer was ready
    ├── OverloadedError              frugal's own queues are full (carries retry_after_s)
    ├── ShuttingDownError            the gateway is closing and takes no new work
    ├── UpstreamError                the provider could not give an answer
    │   ├── UpstreamStatusError      the provider answered with an error status (its body kept)
    │   ├── UpstreamTimeoutError     no answer in time
    │   │   └── QueueTimeoutError    waited in frugal's queue past its deadline, never sent
    │   ├── UpstreamConnectionError  connection refused, reset or dropped
    │   └── UpstreamAnswerError      an answer without the shape that was asked for
    ├── CacheError                   the cache could not help; the request path takes a miss
    │   ├── CacheStoreError          a store failed (I/O, corruption, a server gone, a timeout)
    │   │   └── StoreUnavailable     the store's circuit breaker is open: it was not called
    │   └── EmbedderError            the embedder failed
    │       ├── EmbedderUnavailable  the model cannot be loaded (the message says what to run)
    │       └── EmbedderClosed       the embedder closed before the text was embedded
    ├── LeaderGone                   a coalesced request's leader ended without an answer
    └── ConfigurationError           frugal cannot start as configured
        ├── SettingsError            a setting has a bad value (the message names it)
        ├── KeysFileError            the client keys file cannot be read or is malformed
        └── RedisStoreConfigError    the Redis server or index cannot hold this cache

Errors carry what happened, never how to say it over HTTP: `frugal.api.errors` maps this tree
onto OpenAI-shaped responses in one table. Foreign exceptions are mapped onto the tree where
they arise: httpx's in `frugal.upstream.client`, sqlite3's in the embedded store, redis-py's in
the Redis store.
"""

from __future__ import annotations

from typing import Any


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body of an OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class FrugalError(Exception):
    """Base of every error frugal raises on purpose. ``param`` names the offending field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RequestError(FrugalError):
    """The client's request cannot be served as sent."""


class InvalidRequestError(RequestError):
    pass


class AuthenticationError(RequestError):
    pass


class NotFoundError(RequestError):
    pass


class RequestTimeoutError(RequestError):
    pass


class PayloadTooLargeError(RequestError):
    pass


class ClientDisconnectedError(RequestError):
    """Nobody is left to answer; only the access log and the records see it."""


class OverloadedError(FrugalError):
    """Too much is waiting already; ``retry_after_s`` says when trying again is worth it."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDownError(FrugalError):
    pass


class UpstreamError(FrugalError):
    """The provider could not give an answer."""


class UpstreamStatusError(UpstreamError):
    """The provider answered ``upstream_status``; its body and ``Retry-After`` are kept."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_body: dict[str, Any] | None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.upstream_body = upstream_body
        self.retry_after_s = retry_after_s


class UpstreamTimeoutError(UpstreamError):
    pass


class QueueTimeoutError(UpstreamTimeoutError):
    """An item waited in frugal's queue past its deadline and was never sent."""


class UpstreamConnectionError(UpstreamError):
    pass


class UpstreamAnswerError(UpstreamError):
    """The provider answered 200 with a body that lacks what the request needs from it."""


class CacheError(FrugalError):
    """The cache could not do what was asked; on the request path that is a miss."""


class CacheStoreError(CacheError):
    """The store could not do what was asked (I/O, corruption, a server gone, a timeout)."""


class StoreUnavailable(CacheStoreError):
    """The store's circuit breaker is open: the store was not called."""


class EmbedderError(CacheError):
    """Base of the embedder's errors."""


class EmbedderUnavailable(EmbedderError):
    """The model cannot be loaded; the message says what to run or install."""


class EmbedderClosed(EmbedderError):
    """The embedder was closed before the text was embedded."""


class LeaderGone(FrugalError):
    """The request a coalesced follower waited for ended without an answer (its client left)."""


class ConfigurationError(FrugalError):
    """frugal cannot start as configured; the message says what to change."""


class SettingsError(ConfigurationError, ValueError):
    """A setting has a bad value; the message names the setting and the value."""


class KeysFileError(ConfigurationError, ValueError):
    """The keys file cannot be read or is malformed; the message says where."""


class RedisStoreConfigError(ConfigurationError):
    """The server or its index cannot hold this cache (no query engine, another schema)."""
