"""`frugal bench`: its streams, and a short run whose counts add up."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from frugal.bench.run import configurations
from frugal.bench.workload import load_workload, stream
from tests.cache.tuned import tuned_copy
from tests.conftest import MODEL_DIR, run_frugal

INTENTS = {
    "capital": [
        "What is the capital of France?",
        "What's the capital of France?",
        "Which city is the capital of France?",
        "Tell me the capital of France",
    ],
    "painter": [
        "Who painted the Mona Lisa?",
        "Who was the painter of the Mona Lisa?",
        "Which artist painted the Mona Lisa?",
    ],
    "boiling": [
        "What is the boiling point of water?",
        "At what temperature does water boil?",
        "How hot does water have to be to boil?",
    ],
}
OUT_OF_SCOPE = ["Book me a table for two", "How tall is a giraffe?"]


def write_intents(path: Path) -> Path:
    lines = [{"text": t, "intent": intent} for intent, texts in INTENTS.items() for t in texts]
    lines += [{"text": t, "intent": "oos"} for t in OUT_OF_SCOPE]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_intents_are_groups_and_out_of_scope_texts_stand_alone(tmp_path: Path) -> None:
    workload = load_workload(write_intents(tmp_path / "intents.jsonl"))
    sizes = sorted(len(group) for group in workload.groups)
    assert sizes == [1, 1, 3, 3, 4]


def test_duplicate_pairs_join_into_clusters(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    pairs = [("a", "b", 1), ("b", "c", 1), ("c", "d", 0), ("e", "f", 0)]
    path.write_text("".join(json.dumps({"a": a, "b": b, "label": n}) + "\n" for a, b, n in pairs))
    workload = load_workload(path)
    clusters = sorted(sorted(workload.texts[i] for i in group) for group in workload.groups)
    assert clusters == [["a", "b", "c"], ["d"], ["e"], ["f"]]


def test_a_stream_repeats_with_its_seed_and_favours_groups_of_many(tmp_path: Path) -> None:
    workload = load_workload(write_intents(tmp_path / "intents.jsonl"))
    first = stream(workload, 500, seed=7)
    assert first == stream(workload, 500, seed=7)
    assert first != stream(workload, 500, seed=8)
    by_group = Counter(draw.group for draw in first)
    lone = [g for g, members in enumerate(workload.groups) if len(members) == 1]
    many = [g for g, members in enumerate(workload.groups) if len(members) > 1]
    assert min(by_group[g] for g in many) > max(by_group[g] for g in lone)
    assert all(
        draw.text in [workload.texts[i] for i in workload.groups[draw.group]] for draw in first
    )


def test_a_short_run_adds_up(tmp_path: Path) -> None:
    workload = write_intents(tmp_path / "intents.jsonl")
    out = tmp_path / "out"
    only = "direct,no-cache,exact,semantic,semantic+batching,semantic@0.80"
    fast = ["--call-latency-ms", "2", "--item-latency-ms", "1", "--token-latency-ms", "0"]
    result = run_frugal(
        *["bench", "--workload", str(workload), "--requests", "120", "--clients", "8", *fast],
        *["--thresholds", "0.8", "--only", only, "--out", str(out)],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    rows = {row["config"]: row for row in report["configurations"]}
    assert list(rows) == [
        "direct", "no-cache", "exact", "semantic", "semantic+batching", "semantic@0.80",
    ]  # fmt: skip
    for row in rows.values():
        assert row["errors"] == 0 and row["requests"] == 120
        assert row["upstream_calls"] + row["hits"] + row["coalesced"] == row["requests"]
    for name in ("direct", "no-cache"):
        assert (rows[name]["hits"], rows[name]["coalesced"]) == (0, 0)
        assert rows[name]["upstream_calls"] == 120
    # Six groups, 120 prompts: every cache saves most calls; meaning saves more than strings.
    assert rows["semantic"]["hits"] >= rows["exact"]["hits"] > 0
    assert rows["exact"]["wrong_hits"] == 0
    for name in ("bench.md", "latency.png", "thresholds.png"):
        assert (out / name).stat().st_size > 0


def test_the_stream_as_one_batch_file_sends_only_what_the_cache_cannot_fold(
    tmp_path: Path,
) -> None:
    workload = write_intents(tmp_path / "intents.jsonl")
    out = tmp_path / "out"
    fast = ["--call-latency-ms", "2", "--item-latency-ms", "1", "--token-latency-ms", "0"]
    result = run_frugal(
        *["bench", "--workload", str(workload), "--requests", "120", *fast],
        *["--only", "no-cache,batch-direct,deferred", "--out", str(out)],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        row["config"]: row for row in json.loads((out / "bench.json").read_text())["configurations"]
    }
    assert rows["batch-direct"]["upstream_calls"] == 120 and rows["batch-direct"]["errors"] == 0
    deferred = rows["deferred"]
    assert deferred["errors"] == 0
    # Every line is sent, or folded onto a line that was; six groups fold to far fewer.
    assert deferred["upstream_calls"] + deferred["coalesced"] == 120
    assert 0 < deferred["upstream_calls"] < 60
    # The same tokens cost half at the batch price; folding cuts the rest.
    live, batch = rows["no-cache"]["upstream_cost_usd"], rows["batch-direct"]["upstream_cost_usd"]
    assert batch < live and deferred["upstream_cost_usd"] < batch


def test_models_side_by_side_double_only_the_setups_that_embed() -> None:
    setups = configurations([0.8], [("base", "base"), ("faq", "/srv/faq")])
    assert [setup.label for setup in setups] == [
        "direct", "no-cache", "exact", "batch-direct",
        "semantic (base)", "semantic (faq)",
        "semantic+batching (base)", "semantic+batching (faq)",
        "semantic@0.80 (base)", "semantic@0.80 (faq)",
        "deferred (base)", "deferred (faq)",
    ]  # fmt: skip
    for setup in setups:
        env = setup.gateway_env or {}
        assert env.get("FRUGAL_EMBEDDER_MODEL") == {"base": "base", "faq": "/srv/faq"}.get(
            setup.model or ""
        )
    assert [setup.label for setup in configurations([0.8])][4:] == [
        "semantic", "semantic+batching", "semantic@0.80", "deferred",
    ]  # fmt: skip


def test_a_run_with_two_models_has_a_row_for_each(tmp_path: Path) -> None:
    copy = tuned_copy(MODEL_DIR, tmp_path / "copy")
    workload = write_intents(tmp_path / "intents.jsonl")
    out = tmp_path / "out"
    fast = ["--call-latency-ms", "2", "--item-latency-ms", "1", "--token-latency-ms", "0"]
    result = run_frugal(
        *["bench", "--workload", str(workload), "--requests", "40", "--clients", "1", *fast],
        *["--only", "semantic", "--models", f"base,{copy}", "--out", str(out)],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    rows = [(row["config"], row["embedder"]) for row in report["configurations"]]
    assert rows == [("semantic", "base"), ("semantic", str(copy))]
    assert [model["embedder"] for model in report["embedders"]] == ["base", str(copy)]
    # The same vectors under two names, one request at a time: the stream is served alike.
    served = {(row["hits"], row["upstream_calls"]) for row in report["configurations"]}
    assert len(served) == 1 and served.pop()[0] > 0
    assert "| configuration | embedder |" in (out / "bench.md").read_text()
    for name in ("latency.png", "thresholds.png"):
        assert (out / name).stat().st_size > 0
