"""The one place where errors become HTTP responses, always in OpenAI's shape.

`HTTP_ERRORS` gives every class of `frugal.errors` its status, OpenAI error ``type`` and
``code``; a test fails when a class of the tree has no row. A provider's error status is the one
case decided per error (`UpstreamStatusError`): its 4xx pass through as they are, a 429 keeps
its ``Retry-After``, a 5xx becomes a 502 once retries are spent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from frugal import errors
from frugal.errors import FrugalError, InvalidRequestError, error_body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpError:
    status: int
    type: str
    code: str | None


_INVALID = "invalid_request_error"
_SERVER = "server_error"

HTTP_ERRORS: dict[type[FrugalError], HttpError] = {
    errors.FrugalError: HttpError(500, _SERVER, "internal_error"),
    errors.RequestError: HttpError(400, _INVALID, "invalid_request"),
    errors.InvalidRequestError: HttpError(400, _INVALID, "invalid_request"),
    errors.AuthenticationError: HttpError(401, "authentication_error", "invalid_api_key"),
    errors.NotFoundError: HttpError(404, _INVALID, "not_found"),
    errors.RequestTimeoutError: HttpError(408, _INVALID, "request_timeout"),
    errors.PayloadTooLargeError: HttpError(413, _INVALID, "payload_too_large"),
    # nginx's status for a client that left; only the access log and the records see it.
    errors.ClientDisconnectedError: HttpError(499, _INVALID, "client_closed_request"),
    errors.OverloadedError: HttpError(429, "rate_limit_error", "gateway_overloaded"),
    errors.ShuttingDownError: HttpError(503, _SERVER, "shutting_down"),
    errors.UpstreamError: HttpError(502, "upstream_error", None),
    errors.UpstreamStatusError: HttpError(502, "upstream_error", None),  # see _status_error
    errors.UpstreamTimeoutError: HttpError(504, "upstream_error", "upstream_timeout"),
    errors.QueueTimeoutError: HttpError(504, "upstream_error", "queue_timeout"),
    errors.UpstreamConnectionError: HttpError(502, "upstream_error", "upstream_unreachable"),
    errors.UpstreamAnswerError: HttpError(502, "upstream_error", "upstream_bad_answer"),
    # Only admin routes see cache errors: the request path fails open (a failure is a miss).
    errors.CacheError: HttpError(503, _SERVER, "cache_unavailable"),
    errors.CacheStoreError: HttpError(503, _SERVER, "cache_unavailable"),
    errors.StoreUnavailable: HttpError(503, _SERVER, "cache_unavailable"),
    errors.EmbedderError: HttpError(503, _SERVER, "embedder_unavailable"),
    errors.EmbedderUnavailable: HttpError(503, _SERVER, "embedder_unavailable"),
    errors.EmbedderClosed: HttpError(503, _SERVER, "shutting_down"),
    errors.LeaderGone: HttpError(500, _SERVER, "internal_error"),
    errors.ConfigurationError: HttpError(500, _SERVER, "internal_error"),
    errors.SettingsError: HttpError(500, _SERVER, "internal_error"),
    errors.KeysFileError: HttpError(500, _SERVER, "internal_error"),
    errors.RedisStoreConfigError: HttpError(500, _SERVER, "internal_error"),
}

# Messages that would tell a client about frugal's insides are replaced by these.
_HIDDEN = {
    500: "The gateway failed unexpectedly.",
    503: "The cache store is unavailable; try again later.",
}


def http_error(exc: FrugalError) -> HttpError:
    """``exc``'s status, type and code: its own class's row, or its nearest ancestor's."""
    if isinstance(exc, errors.UpstreamStatusError):
        return _status_error(exc)
    for cls in type(exc).__mro__:
        if issubclass(cls, FrugalError) and cls in HTTP_ERRORS:
            return HTTP_ERRORS[cls]
    return HTTP_ERRORS[FrugalError]


def status_of(exc: BaseException) -> int:
    """The HTTP status a failure is reported with (500 for anything frugal did not expect)."""
    return http_error(exc).status if isinstance(exc, FrugalError) else 500


def error_json(exc: FrugalError) -> dict[str, Any]:
    """The OpenAI-shaped body for ``exc``; a provider's own 4xx body passes through."""
    if (
        isinstance(exc, errors.UpstreamStatusError)
        and exc.upstream_status < 500
        and _is_openai_error(exc.upstream_body)
    ):
        assert exc.upstream_body is not None
        return exc.upstream_body
    mapped = http_error(exc)
    message = _HIDDEN.get(mapped.status, exc.message) if _hides(exc) else exc.message
    return error_body(message, type=mapped.type, param=exc.param, code=mapped.code)


def error_response(exc: FrugalError) -> JSONResponse:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None and status_of(exc) == 429:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(error_json(exc), status_code=status_of(exc), headers=headers)


def _hides(exc: FrugalError) -> bool:
    return isinstance(exc, errors.CacheError | errors.ConfigurationError | errors.LeaderGone)


def _status_error(exc: errors.UpstreamStatusError) -> HttpError:
    status = exc.upstream_status
    code = f"upstream_{status}"
    if status == 429:
        return HttpError(429, "rate_limit_error", code)
    if status < 500:
        return HttpError(status, _INVALID, code)
    return HttpError(502, "upstream_error", code)


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


def invalid_request_from(exc: ValidationError | RequestValidationError) -> InvalidRequestError:
    """Describe the first schema violation the way OpenAI does: a message and the param."""
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"] if part != "body"]
    param = ".".join(location) or None
    where = f" at '{param}'" if param else ""
    return InvalidRequestError(f"Invalid request body{where}: {first['msg']}", param=param)


async def _frugal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FrugalError)
    if isinstance(exc, errors.CacheError):
        logger.warning("cache failed on %s: %s", request.url.path, exc)
    elif status_of(exc) == 500:
        logger.error("unexpected %s on %s: %s", type(exc).__name__, request.url.path, exc)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request_from(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = error_body("Unknown route.", type=_INVALID, code="not_found")
    else:
        body = error_body(str(exc.detail), type=_INVALID, code=None)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s", request.url.path, exc_info=exc)
    body = error_body(_HIDDEN[500], type=_SERVER, code="internal_error")
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FrugalError, _frugal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
