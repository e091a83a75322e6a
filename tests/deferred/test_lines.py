"""Checking a batch input file line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from frugal.api.batches import LINE_SCHEMAS
from frugal.deferred import LinesInvalid, parse_lines
from frugal.provider import Endpoint

CHAT = "/v1/chat/completions"


def line(custom_id: str, **changes: Any) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body, **changes}


def write(tmp_path: Path, *rows: dict[str, Any] | str) -> Path:
    path = tmp_path / "in.jsonl"
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    path.write_text(text)
    return path


def test_good_lines_come_back_in_order_with_their_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, line("a"), "", line("b"))
    found = parse_lines(path, endpoint=CHAT, schemas=LINE_SCHEMAS)
    assert [(item.number, item.custom_id, item.endpoint) for item in found] == [
        (1, "a", Endpoint.CHAT),
        (3, "b", Endpoint.CHAT),
    ]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("[1, 2]", "invalid_json_line"),
        (line(""), "missing_custom_id"),
        (line("a"), "duplicate_custom_id"),
        (line("x", method="GET"), "invalid_method"),
        (line("x", url="/v1/images"), "invalid_url"),
        (line("x", url="/v1/embeddings"), "mismatched_url"),
        (line("x", body={"model": "m"}), "invalid_body"),
        (line("x", body={"model": "m", "messages": [{"role": "user"}], "stream": True}),
         "invalid_body"),
    ],
)  # fmt: skip
def test_each_bad_line_is_named_and_the_file_refused(
    tmp_path: Path, bad: dict[str, Any] | str, code: str
) -> None:
    path = write(tmp_path, line("a"), bad, line("z"))
    with pytest.raises(LinesInvalid) as refused:
        parse_lines(path, endpoint=CHAT, schemas=LINE_SCHEMAS)
    assert [(error.line, error.code) for error in refused.value.errors] == [(2, code)]


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LinesInvalid) as refused:
        parse_lines(write(tmp_path, ""), endpoint=CHAT, schemas=LINE_SCHEMAS)
    assert refused.value.errors[0].code == "empty_file"
