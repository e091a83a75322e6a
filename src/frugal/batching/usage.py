"""One ``usage`` for several answers: a list call's, split among what shared it.

A provider reports one ``usage`` for a list call. Whoever splits the call's answer (the batcher
among the requests that shared the call, the pipeline among the items of one request) splits
its usage in proportion to weights, (prompt size, answer size) per part, so that the parts add
up to the whole exactly: no token is lost or counted twice.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apportion_usage"]


def apportion_usage(usage: Any, weights: list[tuple[int, int]]) -> list[dict[str, Any]] | None:
    """Split ``usage`` by ``weights`` (prompt weight, completion weight) per part; ``None``
    when ``usage`` is not an object. A usage without ``completion_tokens`` (embeddings') gives
    parts without it.

    Example: ``apportion_usage({"prompt_tokens": 3, "total_tokens": 3}, [(1, 0), (2, 0)])``
    is ``[{"prompt_tokens": 1, "total_tokens": 1}, {"prompt_tokens": 2, "total_tokens": 2}]``.
    """
    if not isinstance(usage, dict):
        return None
    prompt_total = _count(usage.get("prompt_tokens"))
    completion_total = _count(usage.get("completion_tokens"))
    prompts = _split(prompt_total, [w[0] for w in weights])
    completions = _split(completion_total, [w[1] for w in weights])
    return [
        {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if "completion_tokens" in usage
        else {"prompt_tokens": p, "total_tokens": p}
        for p, c in zip(prompts, completions, strict=True)
    ]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _split(total: int, weights: list[int]) -> list[int]:
    """Largest-remainder split of ``total`` in proportion to ``weights``."""
    whole = sum(weights)
    if whole == 0:
        weights, whole = [1] * len(weights), len(weights)
    if whole == 0:  # no parts at all
        return []
    shares = [total * w / whole for w in weights]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: shares[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
