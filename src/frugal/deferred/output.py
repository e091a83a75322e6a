"""The output and error files of a finished batch, in OpenAI's line shape.

Every input line gets exactly one line, in input order, in one of the two files::

    {"id": "batch_req_<hex>", "custom_id": ..., "response": {"status_code": 200,
     "request_id": ..., "body": {...}}, "error": null}

An answer (status 200) goes to the output file; a line the provider refused keeps its status
and error body but goes to the error file; a line that got no answer at all (the batch expired,
was cancelled or failed before it was sent) goes to the error file with ``"response": null``
and an ``error`` (``batch_expired``, as OpenAI words it, ``batch_cancelled``,
``batch_failed``). A cache hit or a folded line gets its answer as a new response: its own
``id`` and ``created`` (`frugal.pipeline.fresh`), and its own ``batch_req_`` id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from frugal.deferred.fold import Plan
from frugal.ids import random_hex
from frugal.pipeline import fresh

# Why a line has no answer, by how the batch ended (OpenAI's wording where it has one).
UNANSWERED = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": ("batch_cancelled", "The batch was cancelled before this request was sent."),
    "failed": ("batch_failed", "The provider's batch failed before answering this request."),
}


@dataclass(frozen=True)
class Result:
    """What came back for one unique miss: a ``status_code`` and ``body``, or an ``error``
    (``{"code", "message"}``) when nothing came back."""

    status_code: int | None = None
    body: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.body is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "body": self.body,
            "error": self.error,
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class Written:
    completed: int
    failed: int


def write_files(
    custom_ids: Sequence[str],
    plan: Plan,
    results: Mapping[int, Result],
    *,
    output: Path,
    errors: Path,
    ended: str = "failed",
) -> Written:
    """Write one line per custom id, in order, into ``output`` or ``errors``; a unique miss
    without a result is unanswered for the reason ``ended`` names (a key of `UNANSWERED`)."""
    completed = failed = 0
    with output.open("w", encoding="utf-8") as good, errors.open("w", encoding="utf-8") as bad:
        for custom_id, resolution in zip(custom_ids, plan.resolutions, strict=True):
            if resolution.kind == "hit":
                assert resolution.response is not None
                line = _answered(custom_id, 200, fresh(resolution.response), None)
                ok = True
            else:
                assert resolution.miss is not None
                result = results.get(resolution.miss)
                folded = resolution.kind != "miss"
                line, ok = _from_result(custom_id, result, folded=folded, ended=ended)
            _write(good if ok else bad, line)
            completed += ok
            failed += not ok
    return Written(completed=completed, failed=failed)


def _from_result(
    custom_id: str, result: Result | None, *, folded: bool, ended: str
) -> tuple[dict[str, Any], bool]:
    if result is None or (result.status_code is None and result.error is not None):
        code, message = UNANSWERED.get(ended, UNANSWERED["failed"])
        error = result.error if result is not None and result.error is not None else None
        return _unanswered(custom_id, error or {"code": code, "message": message}), False
    assert result.status_code is not None
    body = result.body or {}
    if result.ok:
        return _answered(custom_id, 200, fresh(body) if folded else body, result.request_id), True
    return _answered(custom_id, result.status_code, body, result.request_id), False


def _answered(
    custom_id: str, status: int, body: dict[str, Any], request_id: str | None
) -> dict[str, Any]:
    return {
        "id": f"batch_req_{random_hex()}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": request_id or f"req_{random_hex()}",
            "body": body,
        },
        "error": None,
    }


def _unanswered(custom_id: str, error: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{random_hex()}",
        "custom_id": custom_id,
        "response": None,
        "error": error,
    }


def _write(out: IO[str], line: dict[str, Any]) -> None:
    out.write(json.dumps(line, separators=(",", ":")) + "\n")
