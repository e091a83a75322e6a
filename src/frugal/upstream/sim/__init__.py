"""The simulated OpenAI-compatible provider behind `frugal sim` (see `frugal.upstream.sim.app`)."""

from frugal.upstream.sim.app import SimConfig, call_latency_s, create_sim_app
from frugal.upstream.sim.wire import count_tokens

__all__ = ["SimConfig", "call_latency_s", "count_tokens", "create_sim_app"]
