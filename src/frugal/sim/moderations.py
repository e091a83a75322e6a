"""``POST /v1/moderations``: one result per input, flagged when it holds the configured text.

``input`` is a string, a list of strings, or a list of parts (``{"type": "text", "text"}``;
an ``image_url`` part is accepted and not looked at). ``model`` defaults to
``omni-moderation-latest``. A flagged input has the category ``harassment`` true, with a score
of 0.99; every other score is 0.0001.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.fields import json_body
from frugal.sim.job import Job
from frugal.sim.rejected import invalid

DEFAULT_MODEL = "omni-moderation-latest"
_FLAGGED_AS = "harassment"
# OpenAI's categories, and the kinds of input each is applied to.
_CATEGORIES = {
    "harassment": ["text"],
    "harassment/threatening": ["text"],
    "hate": ["text"],
    "hate/threatening": ["text"],
    "illicit": ["text"],
    "illicit/violent": ["text"],
    "self-harm": ["text"],
    "self-harm/instructions": ["text"],
    "self-harm/intent": ["text"],
    "sexual": ["text"],
    "sexual/minors": ["text"],
    "violence": ["text"],
    "violence/graphic": ["text"],
}


async def moderation_job(request: Request, *, flag_containing: str | None) -> Job:
    """A moderation call; raises `Rejected` (400) naming the bad field."""
    body = json_body(await request.body())
    model = body.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or not model:
        raise invalid("'model' must be a non-empty string.", "model")
    inputs = _inputs(body.get("input"))

    async def answer() -> Response:
        results = [_result(text, flag_containing) for text in inputs]
        return JSONResponse({"id": f"modr-{uuid.uuid4().hex}", "model": model, "results": results})

    return Job(items=len(inputs), screened=inputs, param="input", answer=answer)


def _inputs(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise invalid("'input' must be a string or a non-empty list.", "input")
    if all(isinstance(x, str) for x in value):
        return list(value)
    if not all(isinstance(part, dict) and isinstance(part.get("type"), str) for part in value):
        raise invalid("'input' must hold strings, or parts that each have a 'type'.", "input")
    texts = [part.get("text") for part in value if part["type"] == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise invalid("A text part must have a string 'text'.", "input")
    # The parts of a list are one input, as OpenAI moderates a multi-modal list.
    return [" ".join(text for text in texts if isinstance(text, str))]


def _result(text: str, flag_containing: str | None) -> dict[str, Any]:
    flagged = flag_containing is not None and flag_containing in text
    categories = {name: flagged and name == _FLAGGED_AS for name in _CATEGORIES}
    scores = {name: 0.99 if hit else 0.0001 for name, hit in categories.items()}
    return {
        "flagged": flagged,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: list(kinds) for name, kinds in _CATEGORIES.items()},
    }
