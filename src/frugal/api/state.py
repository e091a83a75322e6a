"""What the app holds while it runs, built once in the lifespan and reached from routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from frugal.cache.semantic import SemanticCache
from frugal.config import Settings
from frugal.pipeline import Pipeline


@dataclass
class GatewayState:
    settings: Settings
    pipeline: Pipeline
    cache: SemanticCache | None
    upstream_retries: Callable[[], int]
    ready: bool = False


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
