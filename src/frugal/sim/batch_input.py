"""A batch's input file, read and checked as OpenAI checks it before it runs a batch.

Each line (``\\n``-separated; one final newline allowed) is a JSON object ``{"custom_id",
"method": "POST", "url", "body"}`` whose ``url`` is the batch's endpoint, whose ``custom_id``
no other line has and whose ``body.model`` is the model of every other line. What is wrong is
reported as OpenAI reports a batch's validation failures, each a ``BatchError`` naming its
line (1 for the first) and the field:

=============================== ==============================================================
``empty_file``                  the file holds no line (``line`` null)
``invalid_json_line``           the line is not a JSON object
``missing_required_parameter``  ``custom_id``, ``method``, ``url`` or ``body`` is missing
``invalid_value``               one of them is of the wrong type or empty
``duplicate_custom_id``         an earlier line has the same ``custom_id``
``invalid_method``              ``method`` is not ``"POST"``
``invalid_url``                 ``url`` is not the batch's endpoint
``mismatched_model``            ``body.model`` is not the first line's model
=============================== ==============================================================

The body itself is not checked here: a line whose body a live call would refuse fails alone,
when the batch runs (`frugal.sim.batch_lines`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_ERRORS = 100  # reported per batch; a file wrong on every line would otherwise be huge
_FIELDS = ("custom_id", "method", "url", "body")


@dataclass(frozen=True, kw_only=True)
class InputLine:
    """One request of a batch: its line number (from 1), id, and body as a live call's JSON."""

    number: int
    custom_id: str
    body: bytes


@dataclass(frozen=True, kw_only=True)
class BatchInput:
    """What a valid file asks (``lines``, its ``model``), or why it is not valid (``errors``,
    OpenAI's ``BatchError`` objects; never empty for an invalid file)."""

    lines: list[InputLine]
    model: str | None
    errors: list[dict[str, Any]]


def batch_error(code: str, message: str, *, param: str | None, line: int | None) -> dict[str, Any]:
    """An OpenAI ``BatchError``."""
    return {"code": code, "message": message, "param": param, "line": line}


def read_input(data: bytes, *, endpoint: str) -> BatchInput:
    """Check every line of ``data`` against the batch's ``endpoint``.

    >>> line = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}'
    >>> read_input(line, endpoint="/v1/embeddings").lines[0].custom_id
    'a'
    """
    rows = data.split(b"\n")
    if rows and not rows[-1].strip():
        rows.pop()  # the final newline
    if not rows:
        message = "The batch input file is empty."
        return BatchInput(
            lines=[], model=None, errors=[batch_error("empty_file", message, param=None, line=None)]
        )
    lines: list[InputLine] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, row in enumerate(rows, start=1):
        try:
            request = _request(row, endpoint)
            custom_id, named = request["custom_id"], request["body"].get("model")
            if custom_id in seen:
                message = (
                    "The custom_id for this request is a duplicate of another request. The "
                    "custom_id parameter must be unique for each request in a batch."
                )
                raise _Invalid("duplicate_custom_id", message, "custom_id")
            seen.add(custom_id)
            if isinstance(named, str) and model is not None and named != model:
                message = (
                    f"The model {named!r} differs from the model {model!r} of the batch's first "
                    "request; a batch holds requests to one model."
                )
                raise _Invalid("mismatched_model", message, "body.model")
        except _Invalid as exc:
            errors.append(batch_error(exc.code, str(exc), param=exc.param, line=number))
            continue
        if isinstance(named, str):
            model = named
        body = json.dumps(request["body"]).encode()
        lines.append(InputLine(number=number, custom_id=custom_id, body=body))
    return BatchInput(lines=lines if not errors else [], model=model, errors=errors[:MAX_ERRORS])


class _Invalid(Exception):
    """What is wrong with a line: its ``BatchError`` code, message and field."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


def _request(row: bytes, endpoint: str) -> dict[str, Any]:
    """The line's request object; raises `_Invalid` naming the first thing wrong with it."""
    try:
        request = json.loads(row)
    except (UnicodeDecodeError, json.JSONDecodeError):
        request = None
    if not isinstance(request, dict):
        raise _Invalid("invalid_json_line", "This line is not parseable as a JSON object.", None)
    for field in _FIELDS:
        if field not in request:
            message = f"Missing required parameter: '{field}'."
            raise _Invalid("missing_required_parameter", message, field)
    for field in ("custom_id", "method", "url"):
        if not isinstance(request[field], str) or not request[field]:
            raise _Invalid("invalid_value", f"'{field}' must be a non-empty string.", field)
    if not isinstance(request["body"], dict):
        raise _Invalid("invalid_value", "'body' must be an object: the request's body.", "body")
    if request["method"] != "POST":
        message = f"The method {request['method']!r} is not supported; batch requests use 'POST'."
        raise _Invalid("invalid_method", message, "method")
    if request["url"] != endpoint:
        message = (
            f"The URL {request['url']!r} provided for this request does not match the batch's "
            f"endpoint {endpoint!r}."
        )
        raise _Invalid("invalid_url", message, "url")
    return request
