"""What a tuning run saves to resume after an interruption, written atomically.

A checkpoint is one ``torch.save`` file holding everything the next step depends on: the
encoder's and the head's weights, the optimizer's state (AdamW's moments), the step reached,
the pairs seen and the training seconds spent so far, the whole data order (fixed from the seed
before the first step) and torch's RNG state (dropout draws from it; nothing else draws during
training). ``run`` names the run it belongs to (data, seed, hyperparameters), so a command that
differs in any of them is refused rather than resumed into a mixture.

It is written to a temporary file beside its target and renamed over it, so an interruption
while saving leaves the previous checkpoint whole. It holds only tensors and plain values and
is read with ``weights_only=True``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """The state of a run at a step boundary; ``step`` counts the steps done (all epochs)."""

    run: dict[str, Any]
    step: int
    pairs_seen: int
    seconds: float
    order: torch.Tensor  # int64 (epochs, training pairs): the pair index of each draw
    encoder: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor
    loss: float | None  # the smoothed loss shown in the progress bar


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            # Not dataclasses.asdict: it would deep-copy every tensor first.
            state = {field.name: getattr(checkpoint, field.name) for field in fields(checkpoint)}
            torch.save({"format": FORMAT, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or ``None`` when there is none.

    Raises ``ValueError`` when the file is not a checkpoint of this format.
    """
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.pop("format") != FORMAT:
            raise ValueError("another format")
        return Checkpoint(**saved)
    except Exception as exc:
        raise ValueError(
            f"{path} is not a checkpoint this frugal can resume from ({exc}): delete it to start "
            f"afresh"
        ) from exc
