"""A batch input file, line by line: parsed and checked as the provider checks it.

Each line is a JSON object ``{"custom_id", "method", "url", "body"}``: ``custom_id`` a string
unique in the file, ``method`` ``POST``, ``url`` one of `BATCH_URLS` and equal to the batch's
``endpoint``, ``body`` valid for its route (the same pydantic schema the live route uses, given
by the caller) and not streamed. A file with any bad line is refused whole (`LinesInvalid`,
every bad line named by its 1-based number, as OpenAI's ``errors.data[].line``); blank lines
are skipped. The file is read a line at a time, never whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from frugal.provider import Endpoint

# The routes a batch may use, as the batch's ``endpoint`` and each line's ``url`` name them.
BATCH_URLS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/responses": Endpoint.RESPONSES,
}
MAX_LINES = 50_000  # OpenAI's bound on requests per batch
MAX_REPORTED = 100  # errors named in a refusal; the count says how many more there were


@dataclass(frozen=True)
class BatchLine:
    number: int  # 1-based, as in the file
    custom_id: str
    endpoint: Endpoint
    body: dict[str, Any]


@dataclass(frozen=True)
class LineError:
    line: int | None
    code: str
    message: str
    param: str | None = None

    def as_object(self) -> dict[str, Any]:
        """An entry of OpenAI's ``Batch.errors.data``."""
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


class LinesInvalid(Exception):
    """The file cannot be run; ``errors`` name the lines (at most `MAX_REPORTED`)."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} invalid lines")
        self.errors = errors


def parse_lines(
    path: Path, *, endpoint: str, schemas: Mapping[Endpoint, type[BaseModel]]
) -> list[BatchLine]:
    """Every line of the file at ``path``, checked; `LinesInvalid` when any is bad."""
    expected = BATCH_URLS.get(endpoint)
    if expected is None:
        raise LinesInvalid([LineError(None, "invalid_endpoint", f"{endpoint!r} is not batchable")])
    found: list[BatchLine] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            checked = _check(number, raw, endpoint, expected, schemas, seen)
            if isinstance(checked, LineError):
                errors.append(checked)
            else:
                found.append(checked)
            if len(found) + len(errors) > MAX_LINES:
                errors.append(
                    LineError(number, "too_many_lines", f"A batch holds at most {MAX_LINES} lines.")
                )
                break
    if not found and not errors:
        errors.append(LineError(None, "empty_file", "The input file holds no requests."))
    if errors:
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            more = len(errors) - MAX_REPORTED
            shown.append(LineError(None, "too_many_errors", f"{more} more lines are invalid."))
        raise LinesInvalid(shown)
    return found


def _check(
    number: int,
    raw: bytes,
    endpoint: str,
    expected: Endpoint,
    schemas: Mapping[Endpoint, type[BaseModel]],
    seen: set[str],
) -> BatchLine | LineError:
    try:
        item = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return LineError(number, "invalid_json_line", f"Line {number} is not valid JSON: {exc}")
    if not isinstance(item, dict):
        return LineError(number, "invalid_json_line", f"Line {number} is not a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = f"Line {number} needs a custom_id string."
        return LineError(number, "missing_custom_id", message, "custom_id")
    if custom_id in seen:
        message = f"Line {number} repeats custom_id {custom_id!r}: each must be unique."
        return LineError(number, "duplicate_custom_id", message, "custom_id")
    seen.add(custom_id)
    if item.get("method") != "POST":
        message = f"Line {number}: method must be POST, not {item.get('method')!r}."
        return LineError(number, "invalid_method", message, "method")
    url = item.get("url")
    if url not in BATCH_URLS:
        message = f"Line {number}: url {url!r} is not one of {', '.join(BATCH_URLS)}."
        return LineError(number, "invalid_url", message, "url")
    if url != endpoint:
        message = f"Line {number}: url {url!r} differs from the batch's endpoint {endpoint!r}."
        return LineError(number, "mismatched_url", message, "url")
    body = item.get("body")
    if not isinstance(body, dict):
        return LineError(number, "invalid_body", f"Line {number}: body must be an object.", "body")
    if body.get("stream") is True:
        message = f"Line {number}: a batch line cannot be streamed."
        return LineError(number, "invalid_body", message, "body.stream")
    try:
        schemas[expected].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = f"Line {number}: body.{where}: {first['msg']}"
        return LineError(number, "invalid_body", message, f"body.{where}" if where else "body")
    return BatchLine(number=number, custom_id=custom_id, endpoint=expected, body=body)
