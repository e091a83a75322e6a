"""``GET`` and ``DELETE /v1/responses/{id}``: relayed to the provider, but for the ids frugal
minted for answers it served from its cache. The provider never stored those, so they are
answered 404 in OpenAI's shape without asking it. (A client that needs to read an answer back
asks with ``store: true``, which is never served from the cache.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from frugal.api.relay import relay
from frugal.api.routes import tenant_of
from frugal.api.state import gateway
from frugal.errors import NotFoundError
from frugal.pipeline import MINTED_RESPONSE_PREFIX

router = APIRouter()


@router.api_route("/v1/responses/{response_id}", methods=["GET", "DELETE"], include_in_schema=False)
async def stored_response(request: Request, response_id: str) -> Response:
    state = gateway(request)
    if response_id.startswith(MINTED_RESPONSE_PREFIX):
        tenant_of(request, state)  # a caller without a key learns nothing, not even a 404
        raise NotFoundError(
            f"No response with id '{response_id}' is stored: it was answered from frugal's "
            f"cache, and the provider never saw it. Ask with store: true to keep a response.",
            param="response_id",
        )
    return await relay(request, state)
