"""What the app holds while it runs, built once in the lifespan and reached from routes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from frugal.batching.coalescer import Coalescer
from frugal.batching.upstream import BatchingUpstream
from frugal.cache.semantic import SemanticCache
from frugal.config import Settings
from frugal.pipeline import Pipeline
from frugal.upstream.client import OpenAIUpstream


@dataclass
class GatewayState:
    settings: Settings
    pipeline: Pipeline
    cache: SemanticCache | None
    upstream: OpenAIUpstream
    batching: BatchingUpstream
    coalescer: Coalescer | None
    ready: bool = False


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
