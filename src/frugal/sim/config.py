"""How the simulated provider behaves: its latency model and its fault rates."""

from __future__ import annotations

from dataclasses import dataclass

FAULTS = ("error_rate", "slow_rate", "slow_ms", "drop_rate")  # changeable while running
# The names the tests and the gateway's default model use, and the moderations default.
DEFAULT_MODELS = ("gpt-4o-mini", "sim-small", "sim-large", "sim-embed", "omni-moderation-latest")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """How the simulated provider behaves. Rates are probabilities in [0, 1].

    Raises ValueError naming the field when a latency or ``batch_delay_s`` is negative,
    ``batch_expire_after_s`` is not positive, a rate is outside [0, 1], a limit is below 1 or
    ``models`` is empty or holds an empty name.
    """

    call_latency_ms: float = 900.0  # fixed cost of every call
    item_latency_ms: float = 100.0  # cost per prompt or input in the call
    token_latency_ms: float = 0.0  # cost per output token of the call's longest answer
    max_concurrency: int | None = None  # calls beyond it queue
    rpm: int | None = None  # requests per minute, over a sliding 60 s window
    error_rate: float = 0.0  # chance of a 500
    slow_rate: float = 0.0  # chance of slow_ms extra latency
    slow_ms: float = 5000.0
    drop_rate: float = 0.0  # chance the connection closes mid-response
    reject_containing: str | None = None  # 400 for a whole call that contains this text
    require_api_key: str | None = None  # when set, 401 without "Authorization: Bearer KEY"
    seed: int | None = None  # seeds the fault draws, so runs repeat
    models: tuple[str, ...] = DEFAULT_MODELS  # what GET /v1/models lists; any name is answered
    flag_containing: str | None = None  # moderations flag an input that contains this text
    batch_delay_s: float = 2.0  # a batch waits this long after its creation before it is answered
    batch_expire_after_s: float | None = None  # a batch not completed by then expires (24 h)

    def __post_init__(self) -> None:
        for name in (
            "call_latency_ms",
            "item_latency_ms",
            "token_latency_ms",
            "slow_ms",
            "batch_delay_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("error_rate", "slow_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)!r}")
        for name in ("max_concurrency", "rpm"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)!r}")
        if self.batch_expire_after_s is not None and not self.batch_expire_after_s > 0:
            message = f"batch_expire_after_s must be > 0 or None, got {self.batch_expire_after_s!r}"
            raise ValueError(message)
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError(f"models must be one or more non-empty names, got {self.models!r}")


def call_latency_s(
    config: SimConfig, *, n_items: int, max_output_tokens: int, slow: bool = False
) -> float:
    """Seconds a call takes. A batch pays for its longest answer, not the sum, as a GPU does.

    >>> call_latency_s(SimConfig(), n_items=5, max_output_tokens=0)
    1.4
    """
    ms = config.call_latency_ms + config.item_latency_ms * n_items
    ms += config.token_latency_ms * max_output_tokens + (config.slow_ms if slow else 0.0)
    return ms / 1000.0
