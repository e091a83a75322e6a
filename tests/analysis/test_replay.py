"""`frugal analyze`: a replay on hand-made vectors, and the command on a crafted log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from frugal.analysis.replay import (
    Prompt,
    clusters,
    load_prompts,
    neighbours,
    replay_exact,
    replay_semantic,
)
from tests.cache.tuned import tuned_copy
from tests.conftest import MODEL_DIR, run_frugal


def vectors() -> np.ndarray:
    """v1 is 0.95 from v0; v2 is 0.85 from v0 (and 0.8075 from v1); v3 equals v0."""
    v0 = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    v1 = np.array([0.95, np.sqrt(1 - 0.95**2), 0.0], dtype=np.float32)
    v2 = np.array([0.85, 0.0, np.sqrt(1 - 0.85**2)], dtype=np.float32)
    return np.stack([v0, v1, v2, v0])


PROMPTS = [
    Prompt("How do I reset my password?", intent="password"),
    Prompt("How can I reset my password?", intent="password"),
    Prompt("How do I reset my router?", intent="router"),
    Prompt("How  do I reset my password?", intent="password"),  # two spaces: an exact repeat
]


def test_the_replay_counts_hits_and_wrong_hits_by_hand() -> None:
    near = neighbours(vectors(), [p.scope for p in PROMPTS], floor=0.8)
    strict = replay_semantic(PROMPTS, near, 0.9)
    assert strict.answered_by == [-1, 0, -1, 0]
    assert (strict.hits, strict.wrong_hits) == (2, 0)
    loose = replay_semantic(PROMPTS, near, 0.8)
    assert loose.answered_by == [-1, 0, 0, 0]  # the router question gets the password answer
    assert (loose.hits, loose.wrong_hits) == (3, 1)
    exact = replay_exact(PROMPTS)
    assert (exact.hits, exact.answered_by) == (1, [-1, -1, -1, 0])
    assert loose.summary(4)["upstream_calls"] == 1
    (top,) = clusters(PROMPTS, loose)
    assert (top["cached"], top["answered"], top["wrong"]) == (PROMPTS[0].text, 3, 1)


def test_a_hit_only_answers_from_cached_prompts_of_its_scope() -> None:
    scoped = [
        Prompt(p.text, scope="a" if i != 1 else "b", intent=p.intent) for i, p in enumerate(PROMPTS)
    ]
    near = neighbours(vectors(), [p.scope for p in scoped], floor=0.8)
    assert replay_semantic(scoped, near, 0.9).answered_by == [-1, -1, -1, 0]


def test_a_hit_is_not_stored_so_it_answers_nobody() -> None:
    # v1 hits v0 at 0.9; a prompt equal to v1 then finds v1 uncached and v0 at 0.95.
    chain = np.stack([vectors()[0], vectors()[1], vectors()[1]])
    prompts = [Prompt(f"p{i}") for i in range(3)]
    near = neighbours(chain, ["" for _ in prompts], floor=0.9)
    assert replay_semantic(prompts, near, 0.9).answered_by == [-1, 0, 0]


def test_out_of_scope_prompts_never_share_an_answer() -> None:
    oos = [Prompt("p", intent="oos"), Prompt("p", intent="oos")]
    assert replay_exact(oos).wrong_hits == 1


def test_the_log_is_replayed_by_timestamp(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"text": "second", "timestamp": 2}\n{"text": "first", "timestamp": 1}\n')
    assert [p.text for p in load_prompts(log)] == ["first", "second"]


LOG = [
    ("What is the capital of France?", "capital"),
    ("What is the capital of France?", "capital"),  # exact
    ("What  is the capital of France?", "capital"),  # exact once spaces are collapsed
    ("What's the capital of France?", "capital"),  # by meaning only
    ("Who painted the Mona Lisa?", "painter"),
]


def write_log(path: Path) -> Path:
    path.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in LOG))
    return path


def test_the_command_on_a_crafted_log(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl")
    out = tmp_path / "out"
    result = run_frugal("analyze", "--prompts", str(log), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "analyze.json").read_text())
    assert (report["exact"]["hits"], report["exact"]["upstream_calls"]) == (2, 3)
    at_090 = next(row for row in report["semantic"] if row["threshold"] == 0.90)
    assert (at_090["hits"], at_090["wrong_hits"]) == (3, 0)
    assert report["clusters"][0]["answered"] == 3
    assert (out / "analyze.png").read_bytes()[:4] == b"\x89PNG"


def test_models_side_by_side_replay_the_log_once_each(tmp_path: Path) -> None:
    # The copy serves the base model's graph under another name: the same replay, twice.
    copy = tuned_copy(MODEL_DIR, tmp_path / "copy")
    log = write_log(tmp_path / "log.jsonl")
    out = tmp_path / "out"
    result = run_frugal(
        *["analyze", "--prompts", str(log), "--thresholds", "0.85,0.90"],
        *["--models", f"base,{copy}", "--out", str(out)],
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "analyze.json").read_text())
    assert [model["model"] for model in report["models"]] == ["base", str(copy)]
    rows = [(row["model"], row["threshold"], row["hits"]) for row in report["semantic"]]
    assert rows == [
        ("base", 0.85, 3),
        ("base", 0.90, 3),
        (str(copy), 0.85, 3),
        (str(copy), 0.90, 3),
    ]
    assert [cluster["model"] for cluster in report["clusters"]] == ["base", str(copy)]
    assert report["exact"]["hits"] == 2
    for name in ("base", str(copy)):
        assert f"{name}:     3 answered by" in result.stdout
    assert (out / "analyze.png").read_bytes()[:4] == b"\x89PNG"
