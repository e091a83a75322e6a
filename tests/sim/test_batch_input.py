"""How a batch's input file is read: line ends, blank lines, and the errors' cap."""

from __future__ import annotations

import json

from frugal.sim.batch_input import MAX_ERRORS, read_input

CHAT = "/v1/chat/completions"


def line(custom_id: str, **body: object) -> bytes:
    request = {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}
    return json.dumps(request).encode()


def test_lines_end_with_lf_or_crlf_and_one_final_newline_is_allowed() -> None:
    data = line("a", model="m") + b"\r\n" + line("b", model="m") + b"\n"
    read = read_input(data, endpoint=CHAT)
    assert read.errors == []
    assert [(x.number, x.custom_id) for x in read.lines] == [(1, "a"), (2, "b")]
    assert json.loads(read.lines[0].body) == {"model": "m"} and read.model == "m"


def test_a_blank_line_within_the_file_is_not_a_request() -> None:
    read = read_input(line("a") + b"\n\n" + line("b") + b"\n", endpoint=CHAT)
    assert [(e["line"], e["code"]) for e in read.errors] == [(2, "invalid_json_line")]
    assert read.lines == []  # an invalid file runs nothing


def test_a_line_that_is_json_but_not_an_object_is_refused() -> None:
    read = read_input(b'["custom_id"]\n', endpoint=CHAT)
    assert [(e["line"], e["code"]) for e in read.errors] == [(1, "invalid_json_line")]


def test_errors_beyond_the_cap_are_not_reported() -> None:
    data = b"\n".join([b"nonsense"] * (MAX_ERRORS + 5))
    read = read_input(data, endpoint=CHAT)
    assert len(read.errors) == MAX_ERRORS and read.errors[-1]["line"] == MAX_ERRORS
