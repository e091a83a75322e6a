"""Every committed result can be reproduced from a clone: the files it names are in the repository.

The results under ``benchmarks/results/`` and the README name data files, benchmark scripts and
output folders, in backticks and in their ``Command:`` lines. Each of those paths must exist
relative to the repository root (a path outside it, like ``../shared/data/...``, is a path a
clone does not have). And the data files must load with the loaders the commands use.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from frugal.analysis.replay import load_prompts
from frugal.analysis.thresholds import load_pairs
from frugal.bench.workload import load_workload

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "data" / "qqp" / "pairs.jsonl.gz"
INTENTS = ROOT / "data" / "clinc150" / "intents.jsonl.gz"
DOCUMENTS = sorted((ROOT / "benchmarks" / "results").glob("*.md")) + [ROOT / "README.md"]
# Top-level folders whose files a result may name; other slashed words are routes, URLs, model
# names or local caches (`.frugal/...`, derived from the data and ignored by git).
CHECKED = ("data", "benchmarks", "src")

SPAN = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"^Command: `?(?P<command>[^`\n]+)`?\s*$", re.MULTILINE)
LINK = re.compile(r"!?\[[^\]\n]*\]\((?P<target>[^)\s]+)\)")


def named_paths(text: str) -> set[str]:
    """The words of ``text`` that name a file or folder the repository should hold: in
    backticks or on a ``Command:`` line, relative to the root; a data file (``.jsonl``) or
    a word starting with ``../`` counts wherever it points."""
    words = [word for span in SPAN.findall(text) for word in span.split()]
    words += [word for match in COMMAND.finditer(text) for word in match["command"].split()]
    found: set[str] = set()
    for word in words:
        word = word.strip("(),;:'\"")
        if "/" not in word or "://" in word or word.startswith("/"):
            continue  # a bare name, a URL or a route of the API
        if word.startswith(".frugal/"):
            continue  # a local cache or work file a script derives from the data
        if (
            word.startswith("../")
            or word.split("/", 1)[0] in CHECKED
            or word.endswith((".jsonl", ".jsonl.gz"))
        ):
            found.add(word)
    return found


def problems(text: str, *, root: Path = ROOT) -> list[str]:
    """What is wrong with the paths ``text`` names: outside the repository or missing."""
    found: list[str] = []
    for word in sorted(named_paths(text)):
        path = (root / word).resolve()
        if not path.is_relative_to(root):
            found.append(f"{word}: outside the repository")
        elif not path.exists():
            found.append(f"{word}: missing")
    return found


def broken_links(document: Path) -> list[str]:
    """Relative link and image targets of ``document`` that do not exist beside it."""
    targets = [match["target"] for match in LINK.finditer(document.read_text(encoding="utf-8"))]
    return [
        target
        for target in targets
        if "://" not in target
        and not target.startswith("#")
        and not (document.parent / target.split("#", 1)[0]).exists()
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_path_a_result_names_is_in_the_repository(document: Path) -> None:
    assert problems(document.read_text(encoding="utf-8")) == []
    assert broken_links(document) == []


def test_results_name_the_data_they_were_computed_from() -> None:
    named = set().union(*(named_paths(doc.read_text(encoding="utf-8")) for doc in DOCUMENTS))
    assert {"data/qqp/pairs.jsonl.gz", "data/clinc150/intents.jsonl.gz"} <= named


def test_a_path_outside_the_repository_or_missing_is_reported(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "here.jsonl").write_text("{}\n")
    text = (
        "Command: `frugal tune --pairs ../shared/data/qqp/pairs.jsonl --out benchmarks/out`\n"
        "Rows of `data/here.jsonl` and `shared/data/clinc150/intents.jsonl`; see `src/gone.py`, "
        "`/v1/chat/completions`, `https://example.com/a/b` and `.frugal/bench/q.npy`.\n"
    )
    assert problems(text, root=tmp_path) == [
        "../shared/data/qqp/pairs.jsonl: outside the repository",
        "benchmarks/out: missing",
        "shared/data/clinc150/intents.jsonl: missing",
        "src/gone.py: missing",
    ]


def benchmark_data() -> ModuleType:
    """``benchmarks/_data.py``, the benchmarks' paths to the data and their reader."""
    spec = importlib.util.spec_from_file_location("_data", ROOT / "benchmarks" / "_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pairs_load() -> None:
    pairs = load_pairs(PAIRS)
    assert len(pairs) == 64_115
    assert sum(pair.same for pair in pairs) == 23_585
    assert len(load_workload(PAIRS).texts) == 109_747  # distinct questions


def test_the_intents_load() -> None:
    prompts = load_prompts(INTENTS)
    assert len(prompts) == 23_700
    assert len({prompt.intent for prompt in prompts}) == 151  # 150 intents and oos
    assert len(load_workload(INTENTS).texts) == 23_700


def test_the_benchmarks_read_the_same_files() -> None:
    data = benchmark_data()
    assert (data.PAIRS, data.INTENTS) == (PAIRS, INTENTS)
    assert len(data.rows(PAIRS)) == 64_115
    assert len(data.rows(INTENTS)) == 23_700
