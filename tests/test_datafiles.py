"""Data files read the same plain or gzip-compressed, by every loader."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from frugal.analysis.replay import load_prompts
from frugal.analysis.thresholds import load_pairs
from frugal.bench.workload import load_workload
from frugal.datafiles import open_data

# Not ASCII and not one line per str.splitlines(): U+2028 is a line break to it, not to a file.
INTENTS = [
    {"text": "wie spät ist es?", "intent": "time", "split": "train"},
    {"text": "what time is it\u2028now", "intent": "time", "split": "val"},
    {"text": "book me a flight", "intent": "oos", "split": "test"},
]
PAIRS = [
    {"a": "How do I learn Python?", "b": "What is the best way to learn Python?", "label": 1},
    {"a": "Café near me?", "b": "Is coffee healthy?", "label": 0},
]


def write_both(
    tmp_path: Path, name: str, rows: Sequence[Mapping[str, object]]
) -> tuple[Path, Path]:
    """``rows`` as ``name`` and as ``name.gz``, UTF-8 with a blank line in the middle."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    text = "\n".join([*lines[:1], "", *lines[1:]]) + "\n"
    plain = tmp_path / name
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / f"{name}.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    return plain, packed


def test_plain_and_gzip_give_the_same_lines(tmp_path: Path) -> None:
    plain, packed = write_both(tmp_path, "intents.jsonl", INTENTS)
    with open_data(plain) as a, open_data(packed) as b:
        lines = list(a)
        assert list(b) == lines
    assert [json.loads(line) for line in lines if line.strip()] == INTENTS


def test_a_gz_suffix_is_what_decides(tmp_path: Path) -> None:
    # A plain file misnamed .gz is an error, not silently read as text.
    wrong = tmp_path / "intents.jsonl.gz"
    wrong.write_text(json.dumps(INTENTS[0]) + "\n", encoding="utf-8")
    with pytest.raises(gzip.BadGzipFile), open_data(wrong) as lines:
        list(lines)


def test_prompts_load_the_same_from_either(tmp_path: Path) -> None:
    plain, packed = write_both(tmp_path, "intents.jsonl", INTENTS)
    loaded = load_prompts(plain)
    assert load_prompts(packed) == loaded
    assert [prompt.text for prompt in loaded] == [row["text"] for row in INTENTS]


def test_pairs_load_the_same_from_either(tmp_path: Path) -> None:
    plain, packed = write_both(tmp_path, "pairs.jsonl", PAIRS)
    loaded = load_pairs(plain)
    assert load_pairs(packed) == loaded
    assert [pair.same for pair in loaded] == [True, False]


@pytest.mark.parametrize(("name", "rows"), [("intents.jsonl", INTENTS), ("pairs.jsonl", PAIRS)])
def test_workloads_load_the_same_from_either(
    tmp_path: Path, name: str, rows: Sequence[Mapping[str, object]]
) -> None:
    plain, packed = write_both(tmp_path, name, rows)
    a, b = load_workload(plain), load_workload(packed)
    assert (b.texts, b.groups) == (a.texts, a.groups)
    assert len(a.texts) == (3 if name == "intents.jsonl" else 4)


def test_a_loader_names_the_line_of_a_bad_row(tmp_path: Path) -> None:
    packed = tmp_path / "pairs.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"a": "x", "b": "y", "label": 1}\n{"a": "x"}\n'))
    with pytest.raises(ValueError, match=r"pairs\.jsonl\.gz:2:"):
        load_pairs(packed)
