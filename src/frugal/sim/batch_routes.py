"""The Batch API's routes as the simulator's jobs: ``POST /v1/batches``, ``GET /v1/batches``,
``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``.

``POST /v1/batches`` takes ``{"input_file_id", "endpoint", "completion_window": "24h",
"metadata"?, "output_expires_after"?}`` (the last accepted, not applied). The file must be held
and uploaded with purpose ``batch`` (else a 404, or a 400 naming ``input_file_id``); the
endpoint one of ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses``; ``metadata`` at most 16 string pairs (keys up to 64 characters, values up to
512). The answer is the new ``Batch``, ``validating``; its file is checked and run in the
background (`frugal.sim.batches`).

``GET /v1/batches`` lists the batches held, newest first: ``limit`` (1-100, 20 when not given)
after the batch ``after``, as ``{"object": "list", "data", "first_id", "last_id",
"has_more"}``. A batch id not held is OpenAI's 404. A cancellation answers the batch
``cancelling`` (or as it is, when already cancelling); a batch that has ended is a 409.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.batch import Batch
from frugal.sim.batches import Batches
from frugal.sim.fields import json_body
from frugal.sim.files import FileStore
from frugal.sim.job import Job
from frugal.sim.rejected import invalid, not_found
from frugal.sim.routes import BATCH_ENDPOINTS

COMPLETION_WINDOWS = ("24h",)


def _required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        message = f"Missing required parameter: '{name}'."
        raise invalid(message, name, code="missing_required_parameter")
    if not isinstance(value, str) or not value:
        raise invalid(f"'{name}' must be a non-empty string.", name)
    return value


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(isinstance(k, str) and len(k) <= 64 for k in value)
        or not all(isinstance(v, str) and len(v) <= 512 for v in value.values())
    ):
        message = (
            "'metadata' must be an object of at most 16 string pairs, keys up to 64 "
            "characters and values up to 512."
        )
        raise invalid(message, "metadata")
    return dict(value)


async def create_job(request: Request, *, batches: Batches, files: FileStore) -> Job:
    """A ``POST /v1/batches``; raises `Rejected` (400 or 404) naming the bad field."""
    body = json_body(await request.body())
    file_id = _required_string(body, "input_file_id")
    endpoint = _required_string(body, "endpoint")
    window = _required_string(body, "completion_window")
    if endpoint not in BATCH_ENDPOINTS:
        supported = ", ".join(f"'{e}'" for e in BATCH_ENDPOINTS)
        message = f"Invalid value: '{endpoint}'. Supported values are: {supported}."
        raise invalid(message, "endpoint", code="invalid_value")
    if window not in COMPLETION_WINDOWS:
        message = f"Invalid value: '{window}'. Supported values are: '24h'."
        raise invalid(message, "completion_window", code="invalid_value")
    metadata = _metadata(body.get("metadata"))
    source = files.get(file_id)
    if source is None:
        raise not_found(f"No such File object: {file_id}", param="input_file_id")
    if source.purpose != "batch":
        message = (
            f"The file {file_id} has purpose '{source.purpose}'; a batch's input file must "
            "be uploaded with purpose 'batch'."
        )
        raise invalid(message, "input_file_id")

    async def answer() -> Response:
        now = time.time()
        batch = Batch(
            endpoint=endpoint,
            input_file_id=file_id,
            completion_window=window,
            metadata=metadata,
            created_at=int(now),
            expires_at=int(now + batches.expires_after_s()),
        )
        batches.start(batch, source)
        return JSONResponse(batch.as_object())

    return Job(answer=answer)


def _held(batches: Batches, request: Request) -> Batch:
    batch_id = request.path_params["batch_id"]
    batch = batches.get(batch_id)
    if batch is None:
        raise not_found(f"No batch found with id '{batch_id}'.", param="batch_id")
    return batch


async def retrieve_job(request: Request, *, batches: Batches) -> Job:
    batch = _held(batches, request)

    async def answer() -> Response:
        return JSONResponse(batch.as_object())

    return Job(answer=answer)


async def cancel_job(request: Request, *, batches: Batches) -> Job:
    batch = _held(batches, request)

    async def answer() -> Response:
        batches.cancel(batch)  # decided now: the batch may have ended while the call waited
        return JSONResponse(batch.as_object())

    return Job(answer=answer)


async def list_job(request: Request, *, batches: Batches) -> Job:
    """The batches held, newest first: a page of ``limit`` after the id ``after``."""
    query = request.query_params
    after = query.get("after")
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise invalid("'limit' must be an integer in [1, 100].", "limit")
    limit = int(limit_text)

    async def answer() -> Response:
        held = batches.listed()[::-1]
        ids = [batch.id for batch in held]
        if after is not None:
            held = held[ids.index(after) + 1 :] if after in ids else []
        page = held[:limit]
        return JSONResponse(
            {
                "object": "list",
                "data": [batch.as_object() for batch in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(held) > limit,
            }
        )

    return Job(answer=answer)
