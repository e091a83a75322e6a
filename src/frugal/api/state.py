"""What the app holds while it runs, built once in the lifespan and reached from routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from frugal.api.signin_limit import SigninLimiter
from frugal.batching import BatchingUpstream, Coalescer
from frugal.cache import SemanticCache, ShadowLog
from frugal.calibration import ThresholdChoice
from frugal.config import Settings
from frugal.fleet import Fleet
from frugal.labels import Labels, RecentHits
from frugal.observability.observer import Observer
from frugal.pipeline import Pipeline
from frugal.tenants import Keys
from frugal.upstream import OpenAIUpstream


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
    threshold: ThresholdChoice | None = None  # the threshold in force and why; None: no cache
    recent_hits: RecentHits | None = None  # the hits a report can name (FRUGAL_CACHE_MODE=on)
    labels: Labels | None = None  # labelled pairs from reports and shadow mode
    fleet: Fleet | None = None  # with the Redis store: this replica in the fleet
    signin_limiter: SigninLimiter = field(default_factory=SigninLimiter)  # dashboard sign-ins
    ready: bool = False

    @property
    def cache_health(self) -> str:
        """``off``, or the cache's own health (``ok``, or ``degraded`` while its store is
        skipped)."""
        return self.cache.health if self.cache is not None else "off"


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
