"""What tokens cost, per model, to turn tokens served from the cache into money saved.

Prices are US dollars per million tokens, input (prompt) and output (completion). The defaults
are providers' list prices for common models; set ``prices`` in the YAML settings file to add
models or correct them (a model given there replaces its default):

    prices:
      gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.60}
      my-finetune: {input_per_million: 0.30, output_per_million: 1.20}

The provider's Batch API costs half the live price unless ``batch_input_per_million`` /
``batch_output_per_million`` say otherwise.

A model is priced by its exact name, else by the longest known name it starts with (a dated
``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``). A model with no price still counts
its tokens; its money is reported as unknown, never as zero.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(0.0, ge=0)
    # The provider's Batch API price; unset: half the live price, as OpenAI charges.
    batch_input_per_million: float | None = Field(default=None, ge=0)
    batch_output_per_million: float | None = Field(default=None, ge=0)

    @property
    def batch_rates(self) -> tuple[float, float]:
        """Dollars per million input and output tokens through the provider's Batch API."""
        given = self.batch_input_per_million
        taken = self.batch_output_per_million
        return (
            self.input_per_million / 2 if given is None else given,
            self.output_per_million / 2 if taken is None else taken,
        )


DEFAULT_PRICES: dict[str, ModelPrice] = {
    name: ModelPrice(input_per_million=given, output_per_million=taken)
    for name, (given, taken) in {
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o1": (15.00, 60.00),
        "o3": (2.00, 8.00),
        "o3-mini": (1.10, 4.40),
        "o4-mini": (1.10, 4.40),
        "text-embedding-3-small": (0.02, 0.0),
        "text-embedding-3-large": (0.13, 0.0),
        "text-embedding-ada-002": (0.10, 0.0),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-sonnet-4": (3.00, 15.00),
    }.items()
}


class PriceTable:
    """Looks prices up by model; ``overrides`` add to and replace the defaults."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}
        # Longest names first, so "gpt-4o-mini-…" is not priced as "gpt-4o".
        self._by_length = sorted(self._prices, key=len, reverse=True)

    def price_of(self, model: str) -> ModelPrice | None:
        if model in self._prices:
            return self._prices[model]
        for name in self._by_length:
            if model.startswith(name):
                return self._prices[name]
        return None

    def cost(
        self, model: str, *, prompt_tokens: int, completion_tokens: int, batch: bool = False
    ) -> float | None:
        """Dollars for these tokens of ``model`` (at its Batch API price when ``batch``);
        ``None`` when its price is unknown."""
        price = self.price_of(model)
        if price is None:
            return None
        given, taken = (
            price.batch_rates if batch else (price.input_per_million, price.output_per_million)
        )
        return (prompt_tokens * given + completion_tokens * taken) / 1_000_000
