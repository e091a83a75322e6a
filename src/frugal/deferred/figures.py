"""What a batch saved: its lines, cache hits, folds, lines sent, and what it cost.

``cost_usd`` is what the lines sent upstream cost (at the Batch API price when they went as a
provider batch, at the live price when they went live); ``live_cost_usd`` what every answered
line would have cost sent live, one by one, with nothing cached or folded (each priced by its
answer's usage). A model without a price makes both ``unknown``, never zero. Published as
strings, as OpenAI's metadata values are (`Figures.as_metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from frugal.deferred.fold import Plan
from frugal.deferred.lines import BatchLine
from frugal.deferred.output import Result
from frugal.observability.prices import PriceTable


@dataclass(frozen=True)
class Figures:
    lines: int
    cache_hits: int
    folded_exact: int
    folded_meaning: int
    lines_sent: int
    cost_usd: float | None
    live_cost_usd: float | None

    @property
    def duplicates_folded(self) -> int:
        return self.folded_exact + self.folded_meaning

    def as_metadata(self) -> dict[str, str]:
        return {
            "frugal_lines": str(self.lines),
            "frugal_cache_hits": str(self.cache_hits),
            "frugal_duplicates_folded": str(self.duplicates_folded),
            "frugal_paraphrases_folded": str(self.folded_meaning),
            "frugal_lines_sent": str(self.lines_sent),
            "frugal_cost_usd": _money(self.cost_usd),
            "frugal_live_cost_usd": _money(self.live_cost_usd),
        }


def tally(
    lines: Sequence[BatchLine],
    plan: Plan,
    results: Mapping[int, Result],
    *,
    prices: PriceTable,
    batch_price: bool,
) -> Figures:
    cost: float | None = 0.0
    live: float | None = 0.0
    sent = set(plan.misses)
    for index, (line, resolution) in enumerate(zip(lines, plan.resolutions, strict=True)):
        if resolution.kind == "hit":
            answer = resolution.response
        else:
            assert resolution.miss is not None
            result = results.get(resolution.miss)
            answer = result.body if result is not None and result.ok else None
        if answer is None:
            continue
        model = str(line.body.get("model") or answer.get("model") or "")
        live = _add(live, _cost(prices, model, answer, batch=False))
        if index in sent:
            cost = _add(cost, _cost(prices, model, answer, batch=batch_price))
    return Figures(
        lines=len(lines),
        cache_hits=plan.count("hit"),
        folded_exact=plan.count("exact"),
        folded_meaning=plan.count("meaning"),
        lines_sent=len(plan.misses),
        cost_usd=cost,
        live_cost_usd=live,
    )


def _cost(prices: PriceTable, model: str, answer: dict[str, Any], *, batch: bool) -> float | None:
    usage = answer.get("usage") or {}
    given = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    taken = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(given, int) or not isinstance(taken, int):
        given, taken = 0, 0
    return prices.cost(model, prompt_tokens=given, completion_tokens=taken, batch=batch)


def _add(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.8f}"
