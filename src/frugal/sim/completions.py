"""Chat completions, completions and embeddings as the simulator's jobs."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.chunks import streamed
from frugal.sim.job import Job
from frugal.sim.routes import CHAT, COMPLETIONS, EMBEDDINGS
from frugal.sim.wire import answer_body, make_choices, parse_call, usage_of

_SCREENED_PARAM = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}


def completion_job(endpoint: str, raw: bytes) -> Job:
    """A call to one of the three routes; raises `Rejected` (400) naming the bad field."""
    call = parse_call(endpoint, raw)
    choices = [] if endpoint == EMBEDDINGS else make_choices(call)

    async def answer() -> Response:
        return JSONResponse(answer_body(call, choices))

    return Job(
        items=len(call.items),
        screened=call.screened,
        param=_SCREENED_PARAM[endpoint],
        output_tokens=max((len(choice.words) for choice in choices), default=0),
        tokens=usage_of(call, choices)["total_tokens"],
        answer=streamed(call, choices) if call.stream and choices else answer,
    )
