"""`frugal model tune` end to end, through the command line: stopped, resumed, exported,
and described by a manifest whose figures the exported graphs reproduce."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

from frugal.analysis.thresholds import evaluate, load_pairs, similarities
from frugal.cache.embedder import OnnxEmbedder
from frugal.tuning import checkpoint, manifest
from frugal.tuning.calibration import labels
from frugal.tuning.pairs import cluster_split
from frugal.tuning.trainer import Hyperparameters, train
from tests.conftest import MODEL_DIR, run_frugal

SEED, SHARE = 1, 0.25
PARAMS = Hyperparameters(seed=SEED, batch_size=16, max_tokens=16)
# Exporting and measuring three graphs takes a while on two busy cores.
pytestmark = pytest.mark.timeout(600)


def tune_args(pairs: Path, out: Path) -> list[str]:
    return [
        "model", "tune", "--pairs", str(pairs), "--out", str(out), "--seed", str(SEED),
        "--validation-share", str(SHARE), "--batch-size", "16", "--max-tokens", "16",
        "--threads", "2", "--speed-texts", "64",
    ]  # fmt: skip


@dataclass(frozen=True)
class Tuned:
    """A run stopped after two steps, what it left, then the same command to the end."""

    out: Path
    stopped: subprocess.CompletedProcess[str]
    left_checkpoint: bool
    left_manifest: bool
    finished: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def tuned(pairs_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    out = tmp_path_factory.mktemp("tuned") / "model"
    stopped = run_frugal(*tune_args(pairs_file, out), "--stop-after-steps", "2", timeout=300)
    left = (out / ".tuning" / "checkpoint.pt").is_file(), (out / "model.json").exists()
    finished = run_frugal(*tune_args(pairs_file, out), timeout=500)
    return Tuned(out, stopped, *left, finished)


def test_a_stopped_run_leaves_a_checkpoint_and_no_model(tuned: Tuned) -> None:
    assert tuned.stopped.returncode == 130, tuned.stopped.stderr
    assert "stopped at step 2 of" in tuned.stopped.stderr
    assert "run the same command again to resume" in tuned.stopped.stderr
    assert (tuned.left_checkpoint, tuned.left_manifest) == (True, False)
    assert "resuming from" in tuned.finished.stderr


def test_the_resumed_run_ends_with_the_uninterrupted_weights(
    tuned: Tuned, pairs_file: Path, tmp_path: Path
) -> None:
    out, finished = tuned.out, tuned.finished
    assert finished.returncode == 0, finished.stderr
    saved = checkpoint.load(out / ".tuning" / "checkpoint.pt")
    assert saved is not None
    split = cluster_split(load_pairs(pairs_file), share=SHARE, seed=SEED)
    whole = train(
        split.training,
        PARAMS,
        run={},
        checkpoint_path=tmp_path / "whole.pt",
        threads=2,
        show_progress=False,
    )
    assert saved.step == whole.steps == whole.planned_steps
    for name, tensor in whole.encoder.state_dict().items():
        torch.testing.assert_close(saved.encoder[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_the_files_match_the_manifest(tuned: Tuned, pairs_file: Path) -> None:
    out, finished = tuned.out, tuned.finished
    assert finished.returncode == 0, finished.stderr
    written = manifest.read(out)  # checks sizes and hashes itself; and here by hand:
    assert set(written["files"]) == {
        "all-MiniLM-L6-v2.onnx", "all-MiniLM-L6-v2.int8.onnx", "tokenizer.json"
    }  # fmt: skip
    for name, described in written["files"].items():
        data = (out / name).read_bytes()
        assert described == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert written["data"]["sha256"] == hashlib.sha256(pairs_file.read_bytes()).hexdigest()
    assert written["data"]["rows"] == 120
    assert written["seed"] == SEED and written["hyperparameters"]["max_tokens"] == 16
    assert written["command"].startswith("frugal model tune --pairs")
    training = written["training"]
    assert training["steps"] == training["planned_steps"]
    assert training["stopped_by"] == "epochs"
    assert training["pairs_seen"] == written["data"]["training_pairs"]


def test_the_exported_graphs_reproduce_the_manifests_figures(
    tuned: Tuned, pairs_file: Path
) -> None:
    out, finished = tuned.out, tuned.finished
    assert finished.returncode == 0, finished.stderr
    written = manifest.read(out)
    held_out = cluster_split(load_pairs(pairs_file), share=SHARE, seed=SEED).validation
    calibration = written["calibration"]
    assert calibration["pairs"] == len(held_out) == written["data"]["validation_pairs"]
    assert calibration["duplicates"] == int(labels(held_out).sum())
    graphs = {
        # The tuned graph loads under the base model's file names: no option needed.
        "fp32": (OnnxEmbedder(out), calibration["tuned"]["fp32"]),
        "int8": (
            OnnxEmbedder(out, graph=written["variants"]["int8"]["file"]),
            calibration["tuned"]["int8"],
        ),
        "base": (OnnxEmbedder(MODEL_DIR), calibration["base"]),
    }
    for name, (embedder, curve) in graphs.items():
        rows = [asdict(row) for row in evaluate(similarities(embedder, held_out), labels(held_out))]
        assert curve["rows"] == rows, name  # JSON keeps floats exactly
    variants = ("fp32", "int8")
    precision = {name: calibration["tuned"][name]["at_recall"]["precision"] for name in variants}
    speed = {name: written["variants"][name]["texts_per_s"] for name in variants}
    int8_keeps_up = precision["int8"] >= precision["fp32"] - 0.005 and speed["int8"] > speed["fp32"]
    assert written["recommended"] == ("int8" if int8_keeps_up else "fp32")
    assert "recommended:" in finished.stdout
