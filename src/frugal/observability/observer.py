"""Where every finished request and every upstream call is reported, once: the metrics, the
summary and the request log all hear of it from here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from frugal.observability.logs import log_request
from frugal.observability.metrics import Metrics
from frugal.observability.prices import PriceTable
from frugal.observability.record import RequestRecord
from frugal.observability.summary import Summary

# Model names come from clients; past this many distinct ones, labels say "other".
MAX_MODEL_LABELS = 100


class Observer:
    def __init__(
        self,
        *,
        prices: PriceTable | None = None,
        tenant_label: bool = True,
        log_prompts: bool = False,
        replica: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``replica`` labels every metric with this process's name in the fleet."""
        self.prices = prices or PriceTable()
        self.metrics = Metrics(tenant_label=tenant_label, replica=replica)
        self.summary = Summary(clock)
        self.log_prompts = log_prompts
        self._models: set[str] = set()

    def model_label(self, model: Any) -> str:
        """A bounded label for a client-given model name."""
        if not isinstance(model, str) or not model or len(model) > 100:
            return "unknown"
        if model not in self._models:
            if len(self._models) >= MAX_MODEL_LABELS:
                return "other"
            self._models.add(model)
        return model

    def cost(self, model: str, usage: Any) -> tuple[int, int, float | None]:
        """Prompt and completion tokens of ``usage`` (a chat's or a Responses API's, which
        names them ``input_tokens`` and ``output_tokens``), and their price (``None``:
        unknown)."""
        if not isinstance(usage, dict):
            return 0, 0, None
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        prompt = prompt if isinstance(prompt, int) else 0
        completion = completion if isinstance(completion, int) else 0
        return (
            prompt,
            completion,
            self.prices.cost(model, prompt_tokens=prompt, completion_tokens=completion),
        )

    def request(self, record: RequestRecord) -> None:
        self.metrics.request(record)
        self.summary.add(record)
        log_request(record, include_prompt=self.log_prompts)

    # The `UpstreamWatcher` of the batching upstream.

    def upstream_call(self, path: str, items: int) -> None:
        self.metrics.upstream_call(path, items)

    def batch_sent(self, path: str, units: int, waits_s: list[float]) -> None:
        self.metrics.batch_sent(path, units, waits_s)
