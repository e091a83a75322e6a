"""One line of a batch, answered as a live call to its endpoint is, and the lines of a batch's
output and error files.

A line gets the answer a live call with its body gets (the same text, usage, structured output
or tool call; a ``/v1/responses`` line is stored unless its body says ``store: false``) and the
same 400 when a live call would be refused, ``reject_containing`` included; the live faults
(``error_rate``, ``drop_rate``, latency, ``rpm``, ``require_api_key``) do not apply. A body with
``stream: true`` is a 400 (``param`` ``"stream"``): a batch's answers are never streamed.

Output and error file lines have OpenAI's shape::

    {"id": "batch_req_<hex>", "custom_id": "...",
     "response": {"status_code": 200, "request_id": "req_<hex>", "body": {...}}, "error": null}
    {"id": "batch_req_<hex>", "custom_id": "...", "response": null,
     "error": {"code": "batch_expired", "message": "..."}}   # a line never answered
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from frugal.sim.completions import completion_job
from frugal.sim.job import Job, Streamed
from frugal.sim.rejected import Rejected, content_rejected, invalid
from frugal.sim.response_store import ResponseStore
from frugal.sim.responses_api import response_job
from frugal.sim.routes import RESPONSES


@dataclass(frozen=True, kw_only=True)
class LineAnswer:
    """What a line was answered: HTTP status and JSON body, and its usage's token counts (0
    for a refusal)."""

    status: int
    body: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


async def answer_line(
    endpoint: str, body: bytes, *, reject_containing: str | None, responses: ResponseStore
) -> LineAnswer:
    """The answer to one line whose ``url`` is ``endpoint``, one of the batchable routes."""
    try:
        job = _job(endpoint, body, responses)
        try:
            if isinstance(job.answer, Streamed):
                raise invalid("A batch's requests cannot be streamed.", "stream")
            if reject_containing is not None and any(
                reject_containing in text for text in job.screened
            ):
                raise content_rejected(reject_containing, job.param)
            response = await job.answer()
        finally:
            await job.release()
    except Rejected as exc:
        return LineAnswer(status=exc.status, body=exc.body)
    answered = json.loads(bytes(response.body))
    usage = answered.get("usage") or {}
    return LineAnswer(
        status=response.status_code,
        body=answered,
        input_tokens=usage.get("prompt_tokens", usage.get("input_tokens", 0)),
        output_tokens=usage.get("completion_tokens", usage.get("output_tokens", 0)),
    )


def _job(endpoint: str, body: bytes, responses: ResponseStore) -> Job:
    if endpoint == RESPONSES:
        return response_job(body, store=responses)
    return completion_job(endpoint, body)


def output_line(custom_id: str, answer: LineAnswer) -> dict[str, Any]:
    """The line of the output file (a 200) or of the error file (a refusal) for an answer."""
    response = {
        "status_code": answer.status,
        "request_id": f"req_{secrets.token_hex(16)}",
        "body": answer.body,
    }
    return {"id": _line_id(), "custom_id": custom_id, "response": response, "error": None}


def unanswered_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """The error file's line for a request the batch never ran (it expired, or was cancelled)."""
    error = {"code": code, "message": message}
    return {"id": _line_id(), "custom_id": custom_id, "response": None, "error": error}


def _line_id() -> str:
    return f"batch_req_{secrets.token_hex(16)}"
