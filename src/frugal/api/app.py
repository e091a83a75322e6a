"""The app factory: everything long-lived is built here, in the lifespan, and closed there."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from frugal.api.errors import install_error_handlers
from frugal.api.request_id import RequestIdMiddleware
from frugal.api.routes import router
from frugal.api.state import GatewayState
from frugal.config import Settings
from frugal.pipeline import Pipeline
from frugal.upstream.client import OpenAIUpstream, RetryPolicy

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway. ``transport`` replaces the network for unit tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
            ),
            limits=httpx.Limits(
                max_connections=settings.upstream_max_concurrency,
                max_keepalive_connections=settings.upstream_max_concurrency,
            ),
        )
        upstream = OpenAIUpstream(
            http=http,
            base_url=settings.upstream_url,
            api_key=settings.upstream_api_key.get_secret_value()
            if settings.upstream_api_key
            else None,
            retry=RetryPolicy(
                max_retries=settings.upstream_max_retries,
                base_delay_s=settings.upstream_retry_base_delay_s,
                max_delay_s=settings.upstream_retry_max_delay_s,
            ),
        )
        state = GatewayState(settings=settings, pipeline=Pipeline(upstream=upstream))
        app.state.gateway = state
        logger.info("frugal gateway forwarding to %s", settings.upstream_url)
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            await http.aclose()

    app = FastAPI(title="frugal", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(router)
    return app
