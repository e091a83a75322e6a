"""``GET /v1/models`` and ``GET /v1/models/{model}``: the model names the simulator lists.

Listing is all a name is for: chat, completions, embeddings and responses answer any model.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.job import Job
from frugal.sim.rejected import not_found

_CREATED = 1_700_000_000  # a fixed time, so that two listings are equal
_OWNER = "frugal-sim"


def model_object(name: str) -> dict[str, Any]:
    """``{"id", "object": "model", "created", "owned_by"}``, as OpenAI's ``Model``."""
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": _OWNER}


async def list_job(request: Request, *, models: tuple[str, ...]) -> Job:
    """``{"object": "list", "data": [model...]}`` in the configured order."""

    async def answer() -> Response:
        return JSONResponse({"object": "list", "data": [model_object(m) for m in models]})

    return Job(answer=answer)


async def model_job(request: Request, *, models: tuple[str, ...]) -> Job:
    """One listed model; a name not listed is OpenAI's 404 ``model_not_found``."""
    name = request.path_params["model"]
    if name not in models:
        message = f"The model '{name}' does not exist or you do not have access to it."
        raise not_found(message, code="model_not_found")

    async def answer() -> Response:
        return JSONResponse(model_object(name))

    return Job(answer=answer)
