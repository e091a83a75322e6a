"""A small slice of the Quora pairs the repository ships, for tuning runs under a minute."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest

from frugal.analysis.thresholds import Pair
from frugal.datafiles import open_data
from tests.conftest import ROOT

QQP = ROOT / "data" / "qqp" / "pairs.jsonl.gz"


def qqp_lines(count: int) -> list[str]:
    """The first ``count`` lines of the Quora pairs file."""
    with open_data(QQP) as lines:
        return list(islice(lines, count))


@pytest.fixture(scope="session")
def few_pairs() -> list[Pair]:
    """48 labelled pairs: six steps of eight."""
    return [
        Pair(record["a"], record["b"], record["label"] == 1)
        for record in map(json.loads, qqp_lines(48))
    ]


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 Quora pairs as a JSONL file."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(qqp_lines(120)), encoding="utf-8")
    return path
