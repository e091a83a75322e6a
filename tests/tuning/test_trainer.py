"""The training loop: the time budget stops it, a checkpoint is refused by a run it does not
belong to, and the data order is fixed by the seed. (A stopped and resumed run ending with
the uninterrupted weights is tested end to end, in test_tune_command.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from frugal.analysis.thresholds import Pair
from frugal.tuning import checkpoint
from frugal.tuning.checkpoint import Checkpoint
from frugal.tuning.loss import AffineHead, pair_loss
from frugal.tuning.trainer import (
    Hyperparameters,
    data_order,
    label_weights,
    learning_rate_factor,
    train,
)

TINY = Hyperparameters(seed=3, batch_size=8, max_tokens=8)


def test_a_spent_budget_stops_before_the_next_step(few_pairs: list[Pair], tmp_path: Path) -> None:
    stopped = train(
        few_pairs,
        TINY,
        run={},
        checkpoint_path=tmp_path / "checkpoint.pt",
        minutes=0,
        show_progress=False,
    )
    assert (stopped.steps, stopped.planned_steps) == (0, 6)
    assert (stopped.stopped_by, stopped.pairs_seen) == ("time budget", 0)
    saved = checkpoint.load(tmp_path / "checkpoint.pt")
    assert saved is not None and saved.step == 0  # resumable with a larger budget


def test_a_checkpoint_of_another_run_is_refused(few_pairs: list[Pair], tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(
        path,
        Checkpoint(
            run={"lr": 1e-5, "seed": 3},
            step=1,
            pairs_seen=8,
            seconds=1.0,
            order=data_order(len(few_pairs), epochs=1, seed=3),
            encoder={},
            head={},
            optimizer={},
            rng=torch.get_rng_state(),
            loss=0.5,
        ),
    )
    with pytest.raises(ValueError, match=r"another run \(lr 1e-05 there, 3e-05 here\)"):
        train(
            few_pairs, TINY, run={"lr": 3e-5, "seed": 3}, checkpoint_path=path, show_progress=False
        )


def test_the_data_order_is_a_permutation_per_epoch_fixed_by_the_seed() -> None:
    order = data_order(10, epochs=2, seed=1)
    assert order.shape == (2, 10)
    assert all(sorted(row.tolist()) == list(range(10)) for row in order)
    assert not torch.equal(order[0], order[1])
    assert torch.equal(order, data_order(10, epochs=2, seed=1))
    assert not torch.equal(order, data_order(10, epochs=2, seed=2))


def test_the_learning_rate_warms_up_then_decays_to_nothing() -> None:
    factors = [learning_rate_factor(step, 20, 0.1) for step in range(20)]
    assert factors[:3] == [0.5, 1.0, 1.0]  # two warm-up steps
    assert all(earlier > later for earlier, later in zip(factors[2:], factors[3:], strict=False))
    assert factors[-1] == pytest.approx(1 / 18)  # the last step still learns


def test_balanced_weights_give_each_label_half_the_loss() -> None:
    pairs = [Pair("a", "b", True)] * 90 + [Pair("a", "c", False)] * 10
    different, duplicate = label_weights(pairs)
    assert different * 10 == pytest.approx(duplicate * 90) == pytest.approx(50)
    assert label_weights([Pair("a", "b", True)] * 4) == (1.0, 1.0)


def test_a_weighted_pair_counts_in_the_loss_by_its_weight() -> None:
    head = AffineHead()
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    b = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    same = torch.tensor([1.0, 0.0, 0.0, 0.0])
    plain = pair_loss(head, a, b, same).item()
    assert pair_loss(head, a, b, same, torch.ones(4)).item() == pytest.approx(plain)
    only_first = pair_loss(head, a, b, same, torch.tensor([4.0, 0.0, 0.0, 0.0]))
    assert only_first.item() == pytest.approx(pair_loss(head, a[:1], b[:1], same[:1]).item())
