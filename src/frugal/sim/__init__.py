"""The simulated OpenAI-compatible provider behind `frugal sim` (see `frugal.sim.app`).

A program of its own: of the gateway it uses only `frugal.errors`, for OpenAI's error shape.
"""

from frugal.sim.app import create_sim_app
from frugal.sim.config import DEFAULT_MODELS, SimConfig, call_latency_s
from frugal.sim.wire import count_tokens

__all__ = ["DEFAULT_MODELS", "SimConfig", "call_latency_s", "count_tokens", "create_sim_app"]
