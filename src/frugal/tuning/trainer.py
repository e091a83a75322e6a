"""The training loop: the packaged all-MiniLM-L6-v2 tuned on labelled pairs, on the CPU.

A bi-encoder: both questions of a pair go through the same encoder with the serving pooling
(`frugal.cache.export.embedding_module`), and the loss is `frugal.tuning.loss.pair_loss`.
AdamW (weight decay on matrices only), a linear warm-up over the first tenth of the planned
steps then a linear decay to zero, gradients clipped to norm 1.

Resumable, and a resumed run equals an uninterrupted one: the data order of every epoch is
drawn from the seed before the first step, torch runs deterministic algorithms on a fixed
number of threads, and a checkpoint (`frugal.tuning.checkpoint`) taken at a step boundary
holds everything the next step reads, dropout's RNG state included. Checkpoints are written
every few minutes and when training ends, whether it ran out of epochs or of time, or was
stopped (SIGINT or SIGTERM: the step under way finishes first; a second signal acts at once).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import numpy as np
import torch
from tokenizers import Tokenizer

from frugal.analysis.thresholds import Pair
from frugal.cache.export import embedding_module
from frugal.tuning import checkpoint
from frugal.tuning.base import base_encoder, base_tokenizer
from frugal.tuning.checkpoint import Checkpoint
from frugal.tuning.loss import HEAD_B, HEAD_W, AffineHead, pair_loss
from frugal.tuning.progress import TrainingProgress

CHECKPOINT_EVERY_S = 300.0
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.1
MAX_GRAD_NORM = 1.0
_SMOOTHING = 0.02  # the weight of each new loss in the one shown

StopReason = Literal["epochs", "time budget", "interrupted"]


@dataclass(frozen=True)
class Hyperparameters:
    """What decides the weights, besides the data. ``max_tokens`` cuts each text while
    training (special tokens included); serving still reads up to 256. ``balance`` weighs
    the two labels equally in the loss, however many pairs each has: labels from operation
    are mostly agreeing pairs, and unweighted they teach the model to call everything the
    same (every similarity near 1)."""

    seed: int = 0
    epochs: int = 1
    batch_size: int = 32
    max_tokens: int = 48
    lr: float = 3e-5
    weight_decay: float = WEIGHT_DECAY
    warmup_share: float = WARMUP_SHARE
    max_grad_norm: float = MAX_GRAD_NORM
    head_w: float = HEAD_W
    head_b: float = HEAD_B
    balance: bool = False


@dataclass(frozen=True)
class Trained:
    """The outcome of `train`: the tuned ``encoder`` (a transformers model) and the head, the
    steps done of those planned, the pairs seen, the training seconds (all runs of it), why it
    stopped, and the torch threads it ran on."""

    encoder: torch.nn.Module
    w: float
    b: float
    steps: int
    planned_steps: int
    pairs_seen: int
    seconds: float
    stopped_by: StopReason
    threads: int


def data_order(count: int, *, epochs: int, seed: int) -> torch.Tensor:
    """int64 ``(epochs, count)``: a permutation of the pairs per epoch, fixed by the seed."""
    rows = [np.random.default_rng([seed, epoch]).permutation(count) for epoch in range(epochs)]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def learning_rate_factor(step: int, planned: int, warmup_share: float) -> float:
    """The share of the peak learning rate for 0-based ``step`` of ``planned``."""
    warmup = max(1, math.ceil(planned * warmup_share))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (planned - step) / max(1, planned - warmup))


def train(
    pairs: Sequence[Pair],
    params: Hyperparameters,
    *,
    run: dict[str, Any],
    checkpoint_path: Path,
    minutes: float | None = None,
    threads: int | None = None,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> Trained:
    """Tune on ``pairs`` (the training side), resuming from ``checkpoint_path`` when it holds
    a checkpoint of the same ``run`` (a description of data and settings, compared as is).

    ``minutes`` caps the training time of all runs of it together (``None``: no cap); the loop
    stops at the first step boundary past it. ``stop_after_steps`` stops as an interruption
    does once that many steps are done. ``threads`` sets torch's threads (``None``: its
    default); a resumed run should use the same number to repeat the same arithmetic.

    Raises ``ValueError`` when the checkpoint belongs to another run or cannot be read, or
    when there are no pairs.
    """
    if not pairs:
        raise ValueError("there are no training pairs")
    weights = label_weights(pairs) if params.balance else (1.0, 1.0)
    saved = checkpoint.load(checkpoint_path)
    if saved is not None:
        _check_same_run(saved.run, run, checkpoint_path)
    with _torch_settings(threads) as used_threads, _stop_on_signals() as stop_requested:
        encoder = base_encoder()
        module = embedding_module(encoder)
        head = AffineHead(params.head_w, params.head_b)
        optimizer = _optimizer(module, head, params)
        if saved is None:
            torch.manual_seed(params.seed)
            state = _State(order=data_order(len(pairs), epochs=params.epochs, seed=params.seed))
        else:
            encoder.load_state_dict(saved.encoder)
            head.load_state_dict(saved.head)
            optimizer.load_state_dict(saved.optimizer)
            torch.set_rng_state(saved.rng)
            state = _State(saved.order, saved.step, saved.pairs_seen, saved.seconds, saved.loss)

        def save() -> None:
            checkpoint.save(
                checkpoint_path,
                Checkpoint(
                    run=run,
                    step=state.step,
                    pairs_seen=state.pairs_seen,
                    seconds=state.seconds,
                    order=state.order,
                    encoder=encoder.state_dict(),
                    head=head.state_dict(),
                    optimizer=optimizer.state_dict(),
                    rng=torch.get_rng_state(),
                    loss=state.loss,
                ),
            )

        tokenizer = base_tokenizer(max_tokens=params.max_tokens)
        per_epoch = math.ceil(len(pairs) / params.batch_size)
        planned = params.epochs * per_epoch
        budget_s = None if minutes is None else minutes * 60.0
        started, spent_before, first_step = time.monotonic(), state.seconds, state.step
        last_saved = started
        stopped_by: StopReason = "epochs"
        module.train()  # dropout on, as in the recipe
        bar = _progress(show_progress, params.epochs * len(pairs), state, budget_s)
        with bar or nullcontext():
            while state.step < planned:
                if budget_s is not None and state.seconds >= budget_s:
                    stopped_by = "time budget"
                    break
                if stop_requested() or (
                    stop_after_steps is not None and state.step >= stop_after_steps
                ):
                    stopped_by = "interrupted"
                    break
                epoch, index = divmod(state.step, per_epoch)
                size = params.batch_size
                drawn = state.order[epoch, index * size : (index + 1) * size].tolist()
                batch = [pairs[i] for i in drawn]
                factor = learning_rate_factor(state.step, planned, params.warmup_share)
                for group in optimizer.param_groups:
                    group["lr"] = params.lr * factor
                loss = _step(
                    module, head, optimizer, tokenizer, batch, params.max_grad_norm, weights
                )
                shown = state.advance(len(batch), loss, spent_before + time.monotonic() - started)
                if bar is not None:
                    bar.advance(len(batch), shown)
                if time.monotonic() - last_saved >= CHECKPOINT_EVERY_S:
                    save()
                    last_saved = time.monotonic()
        if saved is None or state.step != first_step:
            save()
        return Trained(
            encoder=encoder,
            w=float(head.w.item()),
            b=float(head.b.item()),
            steps=state.step,
            planned_steps=planned,
            pairs_seen=state.pairs_seen,
            seconds=state.seconds,
            stopped_by=stopped_by,
            threads=used_threads,
        )


def label_weights(pairs: Sequence[Pair]) -> tuple[float, float]:
    """The weights (of a different pair, of a duplicate) that give each label half the loss:
    ``len(pairs) / (2 * count)``; both 1.0 when one label has no pair (nothing to balance).
    Example: 90 duplicates and 10 others → ``(5.0, 0.555...)``."""
    duplicates = sum(pair.same for pair in pairs)
    different = len(pairs) - duplicates
    if not duplicates or not different:
        return 1.0, 1.0
    return len(pairs) / (2 * different), len(pairs) / (2 * duplicates)


@dataclass
class _State:
    """Where a run stands between steps (saved in its checkpoint with the weights)."""

    order: torch.Tensor
    step: int = 0
    pairs_seen: int = 0
    seconds: float = 0.0  # training time, all runs together
    loss: float | None = None  # smoothed, for the progress bar

    def advance(self, pairs: int, loss: float, seconds: float) -> float:
        """Count a step of ``pairs`` with its ``loss``; return the smoothed loss."""
        self.step += 1
        self.pairs_seen += pairs
        self.seconds = seconds
        smoothed = loss if self.loss is None else self.loss + _SMOOTHING * (loss - self.loss)
        self.loss = smoothed
        return smoothed


def _step(
    module: torch.nn.Module,
    head: AffineHead,
    optimizer: torch.optim.Optimizer,
    tokenizer: Tokenizer,
    batch: Sequence[Pair],
    max_grad_norm: float,
    weights: tuple[float, float],
) -> float:
    """One optimisation step on ``batch``, its pairs weighted by label (``weights``: of a
    different pair, of a duplicate); return its loss."""
    # Both sides in one call: one padding length, one pass through the encoder.
    encodings = tokenizer.encode_batch([p.a for p in batch] + [p.b for p in batch])
    input_ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    attention_mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    vectors = module(input_ids, attention_mask)
    same = torch.tensor([1.0 if p.same else 0.0 for p in batch])
    weight = torch.tensor([weights[1] if p.same else weights[0] for p in batch])
    loss = pair_loss(head, vectors[: len(batch)], vectors[len(batch) :], same, weight)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    torch.nn.utils.clip_grad_norm_([*module.parameters(), *head.parameters()], max_grad_norm)
    optimizer.step()
    return float(loss.item())


def _optimizer(
    module: torch.nn.Module, head: AffineHead, params: Hyperparameters
) -> torch.optim.AdamW:
    """AdamW; biases, LayerNorm weights and the head's two scalars are not decayed."""
    matrices = [p for p in module.parameters() if p.ndim >= 2]
    others = [p for p in module.parameters() if p.ndim < 2] + list(head.parameters())
    return torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": params.weight_decay},
            {"params": others, "weight_decay": 0.0},
        ],
        lr=params.lr,
    )


def _check_same_run(saved: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    keys = sorted(saved.keys() | wanted.keys())
    changes = [
        f"{key} {saved.get(key)!r} there, {wanted.get(key)!r} here"
        for key in keys
        if saved.get(key) != wanted.get(key)
    ]
    if changes:
        raise ValueError(
            f"{path} is the checkpoint of another run ({'; '.join(changes)}): give another "
            f"--out, or delete it to start afresh"
        )


@contextmanager
def _torch_settings(threads: int | None) -> Iterator[int]:
    """Deterministic algorithms on ``threads`` threads, as they were afterwards."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads is not None:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Yield "was a stop asked for?": SIGINT and SIGTERM set it instead of ending the process,
    so the step under way finishes and a checkpoint is saved; a second signal gets the
    previous handler. Off the main thread (where handlers cannot be set) it stays unset."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def ask_to_stop(number: int, frame: FrameType | None) -> None:
        requested.set()
        signal.signal(number, previous[signal.Signals(number)])

    for number in previous:
        signal.signal(number, ask_to_stop)
    try:
        yield requested.is_set
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _progress(
    show: bool, total: int, state: _State, budget_s: float | None
) -> TrainingProgress | None:
    if not show:
        return None
    return TrainingProgress(
        total=total, done=state.pairs_seen, budget_s=budget_s, spent_s=state.seconds
    )
