"""Stored responses of the Responses API: ``GET`` and ``DELETE /v1/responses/{id}``.

A response is kept when it is answered (a stream: when its last event is sent) unless it was
created with ``store: false``; the newest `ResponseStore.capacity` are kept. An id not held is a
404 in OpenAI's shape; a deletion answers ``{"id", "object": "response", "deleted": true}``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from frugal.sim.job import Job
from frugal.sim.rejected import not_found


class ResponseStore:
    """Response objects by id, the oldest evicted beyond ``capacity``."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def put(self, response: dict[str, Any]) -> None:
        self._kept[response["id"]] = response
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)

    def get(self, response_id: str) -> dict[str, Any] | None:
        return self._kept.get(response_id)

    def remove(self, response_id: str) -> None:
        self._kept.pop(response_id, None)


def _held(store: ResponseStore, request: Request) -> dict[str, Any]:
    response_id = request.path_params["response_id"]
    response = store.get(response_id)
    if response is None:
        raise not_found(f"Response with id '{response_id}' not found.")
    return response


async def retrieve_job(request: Request, *, store: ResponseStore) -> Job:
    response = _held(store, request)

    async def answer() -> Response:
        return JSONResponse(response)

    return Job(answer=answer)


async def delete_job(request: Request, *, store: ResponseStore) -> Job:
    response = _held(store, request)

    async def answer() -> Response:
        store.remove(response["id"])
        return JSONResponse({"id": response["id"], "object": "response", "deleted": True})

    return Job(answer=answer)
