"""Reading a JSON request body: size limit first, then JSON, then the schema."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from frugal.api.errors import invalid_request_from
from frugal.errors import InvalidRequestError, PayloadTooLargeError, RequestTimeoutError

M = TypeVar("M", bound=BaseModel)


async def read_json(
    request: Request, *, max_bytes: int, timeout_s: float | None = None
) -> dict[str, Any]:
    """The body as a JSON object; 413 past ``max_bytes``, 408 when it takes longer than
    ``timeout_s`` to arrive (a slow client holds nothing else up), 400 when it is not JSON."""
    return json_object(await read_bytes(request, max_bytes=max_bytes, timeout_s=timeout_s))


async def read_bytes(request: Request, *, max_bytes: int, timeout_s: float | None = None) -> bytes:
    """The whole body; 413 past ``max_bytes``, 408 when it takes longer than ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body is larger than {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(f"Request body is larger than {max_bytes} bytes.")
                chunks.append(chunk)
    except TimeoutError:
        message = f"The request body did not arrive within {timeout_s} s."
        raise RequestTimeoutError(message) from None
    return b"".join(chunks)


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; 400 when it is not JSON or not an object."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    return data


async def read_body(
    request: Request, model: type[M], *, max_bytes: int, timeout_s: float | None = None
) -> tuple[M, dict[str, Any]]:
    """Validate the body against ``model``; return the model and the client's own JSON."""
    data = await read_json(request, max_bytes=max_bytes, timeout_s=timeout_s)
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        raise invalid_request_from(exc) from None
