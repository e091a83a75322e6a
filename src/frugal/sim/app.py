"""The HTTP app of the simulated OpenAI-compatible provider (``frugal sim``).

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` included; a list
``prompt`` gets one choice per prompt), ``POST /v1/embeddings`` (a list ``input``;
``encoding_format`` ``float`` or ``base64``), ``GET /sim/stats``, ``POST /sim/reset``,
``POST /sim/faults`` (new fault rates while running), ``GET /healthz``. Any model name is
accepted; every error has OpenAI's shape, and an unexpected one is logged with its traceback
(never the request's headers). How a call is answered: `frugal.sim.simulator`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import fastapi
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from frugal.errors import error_body
from frugal.sim.config import FAULTS, SimConfig
from frugal.sim.simulator import Simulator
from frugal.sim.wire import CHAT, COMPLETIONS, EMBEDDINGS

logger = logging.getLogger(__name__)


def create_sim_app(config: SimConfig) -> fastapi.FastAPI:
    """A FastAPI app that plays one OpenAI-compatible provider; its state lives on the app.

    >>> app = create_sim_app(SimConfig(call_latency_ms=0, item_latency_ms=0, seed=1))
    """
    app = fastapi.FastAPI(title="frugal sim", docs_url=None, redoc_url=None, openapi_url=None)
    sim = app.state.sim = Simulator(config)

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await sim.handle(endpoint, request)

        return serve

    for endpoint in (CHAT, COMPLETIONS, EMBEDDINGS):
        app.add_api_route(endpoint, route(endpoint), methods=["POST"])

    @app.get("/sim/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sim.stats.as_dict())

    @app.post("/sim/reset")
    async def reset() -> JSONResponse:
        sim.reset()
        return JSONResponse(sim.stats.as_dict())

    @app.post("/sim/faults")
    async def faults(request: Request) -> JSONResponse:
        """Change the fault rates while running (a load test injects faults midway):
        ``{"error_rate", "slow_rate", "slow_ms", "drop_rate"}``, any of them."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict) or not changes.keys() <= set(FAULTS):
                raise ValueError(f"give any of {', '.join(FAULTS)}")
            sim.config = replace(sim.config, **changes)
        except (ValueError, TypeError) as exc:
            body = error_body(str(exc), type="invalid_request_error")
            return JSONResponse(body, status_code=400)
        return JSONResponse({name: getattr(sim.config, name) for name in FAULTS})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        code = "not_found" if exc.status_code == 404 else None
        body = error_body(message, type="invalid_request_error", code=code)
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # The method and path only: the headers carry the caller's API key.
        where = f"{request.method} {request.url.path}"
        logger.exception("unexpected error on %s", where, exc_info=exc)
        body = error_body("The simulator failed unexpectedly.", type="server_error")
        return JSONResponse(body, status_code=500)

    return app
