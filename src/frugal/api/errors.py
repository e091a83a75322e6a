"""The one place where errors become HTTP responses, always in OpenAI's shape."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from frugal.cache.store import CacheStoreError
from frugal.errors import (
    FrugalError,
    InvalidRequestError,
    OverloadedError,
    UpstreamStatusError,
    error_body,
)

logger = logging.getLogger(__name__)


def error_response(exc: FrugalError) -> JSONResponse:
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(exc, OverloadedError | UpstreamStatusError) and retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def invalid_request_from(exc: ValidationError | RequestValidationError) -> InvalidRequestError:
    """Describe the first schema violation the way OpenAI does: a message and the param."""
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"] if part != "body"]
    param = ".".join(location) or None
    where = f" at '{param}'" if param else ""
    return InvalidRequestError(f"Invalid request body{where}: {first['msg']}", param=param)


async def _frugal_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FrugalError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request_from(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = error_body("Unknown route.", type="invalid_request_error", code="not_found")
    else:
        body = error_body(str(exc.detail), type="invalid_request_error", code=None)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    # Only admin routes get here: the request path fails open (a store failure is a miss).
    logger.warning("cache store failed on %s: %s", request.url.path, exc)
    body = error_body(
        "The cache store is unavailable; try again later.",
        type="server_error",
        code="cache_unavailable",
    )
    return JSONResponse(body, status_code=503)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s", request.url.path, exc_info=exc)
    body = error_body(
        "The gateway failed unexpectedly.", type="server_error", code="internal_error"
    )
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FrugalError, _frugal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(CacheStoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected_error)
