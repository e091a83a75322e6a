"""The output and error files: one line per custom id, in order, in OpenAI's shape."""

from __future__ import annotations

import json
from pathlib import Path

from frugal.deferred.fold import Plan, Resolution
from frugal.deferred.output import Result, write_files

ANSWER = {"id": "chatcmpl-abc", "created": 1, "choices": [{"message": {"content": "yes"}}]}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_line_lands_once_in_order_each_with_its_own_ids(tmp_path: Path) -> None:
    plan = Plan(
        resolutions=[
            Resolution("miss", miss=0),
            Resolution("hit", response=ANSWER),
            Resolution("exact", miss=0),
            Resolution("miss", miss=1),
            Resolution("meaning", miss=1),
            Resolution("miss", miss=2),
        ],
        misses=[0, 3, 5],
    )
    results = {
        0: Result(200, ANSWER, request_id="req_1"),
        1: Result(400, {"error": {"message": "no"}}, request_id="req_2"),
    }
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    written = write_files(
        ["a", "b", "c", "d", "e", "f"], plan, results, output=output, errors=errors,
        ended="expired",
    )  # fmt: skip
    assert (written.completed, written.failed) == (3, 3)
    good, bad = read(output), read(errors)
    assert [line["custom_id"] for line in good] == ["a", "b", "c"]
    assert [line["custom_id"] for line in bad] == ["d", "e", "f"]
    assert len({line["id"] for line in good + bad}) == 6
    assert all(line["id"].startswith("batch_req_") for line in good + bad)
    assert good[0]["response"]["body"] == ANSWER
    assert len({line["response"]["body"]["id"] for line in good}) == 3  # fresh ids
    assert bad[0]["response"]["status_code"] == 400 and bad[1]["response"]["status_code"] == 400
    assert bad[2] == {
        "id": bad[2]["id"],
        "custom_id": "f",
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }
