"""The HTTP app of the simulated OpenAI-compatible provider (``frugal sim``).

Routes:

- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` included; a list
  ``prompt`` gets one choice per prompt; a chat's ``response_format`` and forced ``tools``:
  `frugal.sim.structured`), ``POST /v1/embeddings`` (a list ``input``; ``encoding_format``
  ``float`` or ``base64``);
- ``GET /v1/models``, ``GET /v1/models/{model}`` (`frugal.sim.catalog`);
- ``POST /v1/responses`` (`frugal.sim.responses_api`), ``GET`` and ``DELETE
  /v1/responses/{id}`` (`frugal.sim.response_store`);
- ``POST /v1/moderations`` (`frugal.sim.moderations`);
- ``POST /v1/files``, ``GET /v1/files``, ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``,
  ``DELETE /v1/files/{id}`` (`frugal.sim.files`);
- ``POST /v1/batches``, ``GET /v1/batches``, ``GET /v1/batches/{id}``, ``POST
  /v1/batches/{id}/cancel`` (`frugal.sim.batch_routes`; how a batch runs: `frugal.sim.batches`);
- the simulator's own: ``GET /sim/stats``, ``POST /sim/reset``, ``POST /sim/faults`` (new fault
  rates while running), ``GET /sim/files/{id}`` (``{"bytes", "sha256"}`` of an upload as it
  arrived), ``GET /healthz``.

Any model name is answered; every error has OpenAI's shape, and an unexpected one is logged
with its traceback (never the request's headers). How a call is answered:
`frugal.sim.simulator`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import fastapi
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from frugal.errors import error_body
from frugal.sim import batch_routes, catalog, files, moderations, response_store
from frugal.sim.completions import completion_job
from frugal.sim.config import FAULTS, SimConfig
from frugal.sim.job import Job
from frugal.sim.responses_api import responses_job
from frugal.sim.routes import (
    BATCHES,
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    FILES,
    MODELS,
    MODERATIONS,
    RESPONSES,
)
from frugal.sim.simulator import Simulator

logger = logging.getLogger(__name__)
Build = Callable[[Request], Awaitable[Job]]


def create_sim_app(config: SimConfig) -> fastapi.FastAPI:
    """A FastAPI app that plays one OpenAI-compatible provider; its state lives on the app.

    >>> app = create_sim_app(SimConfig(call_latency_ms=0, item_latency_ms=0, seed=1))
    """
    sim = Simulator(config)

    @asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        yield
        await sim.aclose()

    app = fastapi.FastAPI(
        title="frugal sim", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.sim = sim

    def add(method: str, path: str, family: str, build: Build) -> None:
        async def serve(request: Request) -> Response:
            return await sim.serve(family, request, build)

        app.add_api_route(path, serve, methods=[method])

    for endpoint in (CHAT, COMPLETIONS, EMBEDDINGS):
        add("POST", endpoint, endpoint, partial(_completion, endpoint))
    add("GET", MODELS, MODELS, partial(catalog.list_job, models=config.models))
    add("GET", MODELS + "/{model:path}", MODELS, partial(catalog.model_job, models=config.models))
    add("POST", RESPONSES, RESPONSES, partial(responses_job, store=sim.responses))
    one_response = RESPONSES + "/{response_id}"
    add("GET", one_response, RESPONSES, partial(response_store.retrieve_job, store=sim.responses))
    add("DELETE", one_response, RESPONSES, partial(response_store.delete_job, store=sim.responses))
    flag = config.flag_containing
    add("POST", MODERATIONS, MODERATIONS, partial(moderations.moderation_job, flag_containing=flag))
    one_file = FILES + "/{file_id}"
    add("POST", FILES, FILES, partial(files.upload_job, store=sim.files))
    add("GET", FILES, FILES, partial(files.list_job, store=sim.files))
    add("GET", one_file, FILES, partial(files.retrieve_job, store=sim.files))
    add("GET", one_file + "/content", FILES, partial(files.content_job, store=sim.files))
    add("DELETE", one_file, FILES, partial(files.delete_job, store=sim.files))
    one_batch = BATCHES + "/{batch_id}"
    held = sim.batches
    add("POST", BATCHES, BATCHES, partial(batch_routes.create_job, batches=held, files=sim.files))
    add("GET", BATCHES, BATCHES, partial(batch_routes.list_job, batches=held))
    add("GET", one_batch, BATCHES, partial(batch_routes.retrieve_job, batches=held))
    add("POST", one_batch + "/cancel", BATCHES, partial(batch_routes.cancel_job, batches=held))

    @app.get("/sim/files/{file_id}")
    async def received(file_id: str) -> JSONResponse:
        """What arrived of an upload: ``{"bytes", "sha256"}``; not a call."""
        found = files.received(sim.files, file_id)
        if found is None:
            body = error_body(f"No such File object: {file_id}", type="invalid_request_error")
            return JSONResponse(body, status_code=404)
        return JSONResponse(found)

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


async def _completion(endpoint: str, request: Request) -> Job:
    return completion_job(endpoint, await request.body())
