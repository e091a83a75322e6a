"""What the app holds while it runs, built once in the lifespan and reached from routes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from frugal.batching.coalescer import Coalescer
from frugal.batching.upstream import BatchingUpstream
from frugal.cache.breaker import BreakerState, CircuitBreaker, GuardedStore
from frugal.cache.semantic import SemanticCache
from frugal.cache.shadow import ShadowLog
from frugal.config import Settings
from frugal.observability.observer import Observer
from frugal.pipeline import Pipeline
from frugal.tenants import Keys
from frugal.upstream.client import OpenAIUpstream


@dataclass
class GatewayState:
    settings: Settings
    pipeline: Pipeline
    cache: SemanticCache | None
    upstream: OpenAIUpstream
    batching: BatchingUpstream
    coalescer: Coalescer | None
    observer: Observer
    shadow: ShadowLog | None = None
    keys: Keys | None = None  # None: the gateway is open, one tenant
    ready: bool = False

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The shared store's circuit breaker (the Redis store has one)."""
        store = self.cache.store if self.cache is not None else None
        return store.breaker if isinstance(store, GuardedStore) else None

    @property
    def cache_health(self) -> str:
        """``off``; ``degraded`` while the store's breaker is not closed (requests then go
        upstream); else ``ok``."""
        if self.cache is None:
            return "off"
        breaker = self.breaker
        return "degraded" if breaker and breaker.state is not BreakerState.CLOSED else "ok"


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
