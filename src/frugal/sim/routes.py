"""The simulator's ``/v1`` routes, by the family whose counters ``GET /sim/stats`` keeps.

A family is a route and the routes under it: ``/v1/files`` counts ``/v1/files/{id}`` and
``/v1/files/{id}/content`` too.
"""

from __future__ import annotations

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
MODELS, RESPONSES, MODERATIONS = "/v1/models", "/v1/responses", "/v1/moderations"
FILES, BATCHES = "/v1/files", "/v1/batches"
ROUTES = (CHAT, COMPLETIONS, EMBEDDINGS, MODELS, RESPONSES, MODERATIONS, FILES, BATCHES)
# The routes a batch's lines may call (OpenAI batches a few more the simulator does not serve).
BATCH_ENDPOINTS = (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES)
