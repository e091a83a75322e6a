"""``POST /admin/cache/reembed``: the cached prompts of other embedding models, embedded again
by the model in use, so that a change of model does not cost the cache.

After ``FRUGAL_EMBEDDER_MODEL`` changes, the entries the earlier model made are misses: their
vectors cannot be compared with the new model's. This route gives them the new model's vectors,
in batches (`frugal.cache.SemanticCache.reembed`: each entry replaced whole, in place, so a
lookup never sees one half done). It answers as it goes, one JSON line per batch::

    {"done": 64, "total": 1000, "reembedded": 64, "model": "faq@3f9c2e7b1d5a"}

``done`` of the ``total`` entries found at the start are handled, ``reembedded`` of them now
carry ``model`` (the others went meanwhile). The first line comes before any work, so a cache
that is off (404) or a store that cannot be read (503) is an error status; a failure later
ends the stream with an ``{"error": {...}}`` line in OpenAI's shape. A client that leaves
stops the run after the batch under way; what was done stays done, and a new run goes on from
there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from frugal.api.admin import admin
from frugal.api.errors import error_json
from frugal.api.openapi import ADMIN_ERRORS
from frugal.cache import ReembedProgress
from frugal.errors import FrugalError, NotFoundError

logger = logging.getLogger(__name__)

router = APIRouter()

NDJSON = "application/x-ndjson"
# Prompts per batch: a few model calls' worth, so live requests interleave with the work.
BATCH = 64


@router.post(
    "/admin/cache/reembed",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "Progress, one JSON object a line: done, total, reembedded, model (an "
                '{"error": ...} line in OpenAI\'s shape ends a run that failed midway)'
            ),
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **ADMIN_ERRORS,
    },
)
async def reembed(request: Request) -> StreamingResponse:
    """Embed the cached prompts of other embedding models again with the model in use."""
    state = admin(request)
    if state.cache is None:
        raise NotFoundError("The cache is off (FRUGAL_CACHE_MODE=off).")
    model = state.cache.model.id
    progress = state.cache.reembed(batch=BATCH)
    first = await anext(progress)  # before answering: a store that cannot be read is a 503
    logger.info("re-embedding %d cache entries of other models with %s", first.total, model)
    return StreamingResponse(_lines(first, progress, model=model), media_type=NDJSON)


async def _lines(
    first: ReembedProgress, rest: AsyncIterator[ReembedProgress], *, model: str
) -> AsyncIterator[bytes]:
    yield _line(first, model)
    last = first
    try:
        async for step in rest:
            last = step
            yield _line(step, model)
    except FrugalError as exc:
        logger.warning(
            "re-embedding stopped after %d of %d entries: %s", last.done, last.total, exc
        )
        yield (json.dumps(error_json(exc)) + "\n").encode()
        return
    logger.info("re-embedded %d cache entries with %s", last.reembedded, model)


def _line(step: ReembedProgress, model: str) -> bytes:
    fields = {"done": step.done, "total": step.total, "reembedded": step.reembedded}
    return (json.dumps({**fields, "model": model}) + "\n").encode()
