"""frugal's exception tree, and the OpenAI-shaped error body every failure is reported with.

    FrugalError
    ├── RequestError                 the client's request cannot be served as sent (4xx)
    │   ├── InvalidRequestError      400: malformed JSON, schema violation, bad header value
    │   ├── AuthenticationError      401: missing or wrong key
    │   ├── NotFoundError            404: unknown route or entry
    │   ├── RequestTimeoutError      408: the body came slower than FRUGAL_CLIENT_BODY_TIMEOUT_S
    │   ├── PayloadTooLargeError     413: body over FRUGAL_MAX_BODY_BYTES
    │   ├── OverloadedError          429: frugal's own queues are full (carries retry_after_s)
    │   └── ClientDisconnectedError  499: the client left before its answer was ready
    └── UpstreamError                the provider could not give an answer
        ├── UpstreamStatusError      the provider answered with an error status (its body kept);
        │                            4xx pass through as they are, 429 keeps Retry-After,
        │                            5xx become 502 once retries are spent
        ├── UpstreamTimeoutError     504: no answer in time
        └── UpstreamConnectionError  502: connection refused, reset or dropped

Foreign exceptions (httpx) are mapped onto this tree in one place, `frugal.upstream.client`;
the tree is mapped onto HTTP responses in one place, `frugal.api.errors`.
"""

from __future__ import annotations

from typing import Any


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body of an OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class FrugalError(Exception):
    """Base of every error frugal raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.error_type, param=self.param, code=self.code)


class RequestError(FrugalError):
    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequestError(RequestError):
    code = "invalid_request"


class AuthenticationError(RequestError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFoundError(RequestError):
    status_code = 404
    code = "not_found"


class RequestTimeoutError(RequestError):
    status_code = 408
    code = "request_timeout"


class PayloadTooLargeError(RequestError):
    status_code = 413
    code = "payload_too_large"


class OverloadedError(RequestError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "gateway_overloaded"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClientDisconnectedError(RequestError):
    """Nobody is left to answer; the status (nginx's 499) only reaches the access log."""

    status_code = 499
    code = "client_closed_request"


class UpstreamError(FrugalError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; its body and Retry-After are kept."""

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
        if upstream_status == 429:
            self.status_code = 429
            self.error_type = "rate_limit_error"
        elif upstream_status < 500:
            self.status_code = upstream_status
            self.error_type = "invalid_request_error"
        self.code = f"upstream_{upstream_status}"

    def body(self) -> dict[str, Any]:
        # A provider's own 4xx body says best what was wrong with the request: pass it through.
        if self.upstream_status < 500 and _is_openai_error(self.upstream_body):
            return self.upstream_body  # type: ignore[return-value]
        return super().body()


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    code = "upstream_unreachable"


def _is_openai_error(body: object) -> bool:
    """``{"error": {"message": str, "type": str, ...}}``: anything less is replaced by frugal's
    own body, so that every error a client sees has OpenAI's shape."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    return (
        isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
        and all(isinstance(error.get(key), str | None) for key in ("param", "code"))
    )
