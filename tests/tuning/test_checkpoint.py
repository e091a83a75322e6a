"""Checkpoints: a failed save leaves the previous one whole, and a file that is not one is
refused with what to do."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from frugal.tuning import checkpoint
from frugal.tuning.checkpoint import Checkpoint


def small(step: int, **run: Any) -> Checkpoint:
    return Checkpoint(
        run={"seed": 0, **run},
        step=step,
        pairs_seen=8 * step,
        seconds=1.5 * step,
        order=torch.arange(16).reshape(1, 16),
        encoder={"weight": torch.full((2, 2), float(step))},
        head={"w": torch.tensor(20.0), "b": torch.tensor(-18.0)},
        optimizer={"state": {}, "param_groups": [{"lr": 3e-5, "params": [0]}]},
        rng=torch.get_rng_state(),
        loss=None if step == 0 else 0.5,
    )


def test_a_checkpoint_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    assert checkpoint.load(path) is None
    checkpoint.save(path, small(3))
    loaded = checkpoint.load(path)
    assert loaded is not None
    assert (loaded.run, loaded.step, loaded.pairs_seen, loaded.seconds, loaded.loss) == (
        {"seed": 0},
        3,
        24,
        4.5,
        0.5,
    )
    assert torch.equal(loaded.encoder["weight"], torch.full((2, 2), 3.0))
    assert torch.equal(loaded.rng, small(3).rng)


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, small(1))
    with pytest.raises((AttributeError, pickle.PicklingError)):  # which one varies by version
        checkpoint.save(path, small(2, broken=lambda: None))  # cannot be pickled
    loaded = checkpoint.load(path)
    assert loaded is not None and loaded.step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete it to start afresh"):
        checkpoint.load(path)
