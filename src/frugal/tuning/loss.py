"""The training objective: binary cross-entropy on a learned affine map of the cosine.

A pair's probability of being a duplicate is ``sigmoid(w * cos + b)``, with ``w`` and ``b``
learned beside the encoder. Starting at ``w = 20, b = -18`` puts ``p = 0.5`` at a cosine of 0.9,
the gateway's default threshold, so from the first step the loss pushes duplicates above 0.9
and the rest below it: the cosine is shaped around the threshold the cache will use.
"""

from __future__ import annotations

import torch

HEAD_W = 20.0
HEAD_B = -18.0


class AffineHead(torch.nn.Module):
    """``w * cosine + b``: the logit of "these two texts mean the same"."""

    def __init__(self, w: float = HEAD_W, b: float = HEAD_B) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = torch.nn.Parameter(torch.tensor(b, dtype=torch.float32))

    def forward(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.w * cosine + self.b


def pair_loss(
    head: AffineHead,
    a: torch.Tensor,
    b: torch.Tensor,
    same: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean loss of a batch: ``a`` and ``b`` are unit vectors ``(batch, dims)`` row by row,
    ``same`` the labels as floats (1.0: duplicates), ``weight`` each pair's weight (``None``:
    all 1)."""
    cosine = (a * b).sum(dim=1)
    return torch.nn.functional.binary_cross_entropy_with_logits(head(cosine), same, weight)
