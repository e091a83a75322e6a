"""The published OpenAPI document: what each route accepts, and every way it can answer.

FastAPI builds the document from the routes. What a route decorator cannot say is added here,
so that a client generator or a fuzzer can take the document at its word:
- the shared definitions of the body schemas move under ``components`` (their references
  point there), since the routes parse their bodies themselves;
- FastAPI's 422 goes: a validation failure here is a 400 in OpenAI's shape;
- the bearer scheme: required on ``/admin``, optional on the OpenAI routes, because client
  keys are a per-deployment choice (``FRUGAL_API_KEYS_FILE``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from frugal.api.cache_control import HEADER as CONTROL_HEADER
from frugal.api.cache_control import PATTERN as CONTROL_PATTERN
from frugal.api.schemas import ErrorBody

_DEFS = "#/$defs/"
_COMPONENTS = "#/components/schemas/"

_REASONS = {
    400: "Malformed request: bad JSON, a schema violation or a bad header value",
    401: "Missing or wrong key",
    404: "Unknown route or entry, or a feature that is off",
    408: "The request body arrived too slowly",
    413: "The request body is too large",
    429: "Rate limited, by frugal's queues or by the provider (with Retry-After)",
    502: "The provider failed or could not be reached",
    503: "A service frugal depends on is unavailable",
    504: "The provider did not answer in time",
}
# The provider's own 4xx (a 403, a 404 for an unknown model...) are passed through as they are.
_PROVIDER_4XX = "4XX"

CONTROL_PARAMETER = {
    "name": CONTROL_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Per-request cache control: comma-separated no-cache, no-store, ttl=SECONDS, "
        "threshold=SIMILARITY (cosine, -1 to 1)."
    ),
    "schema": {"type": "string", "pattern": CONTROL_PATTERN},
}


def errors(*statuses: int, provider: bool = False) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: each status with OpenAI's error body."""
    documented: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _REASONS[status]} for status in statuses
    }
    if provider:
        documented[_PROVIDER_4XX] = {
            "model": ErrorBody,
            "description": "The provider's own error, passed through",
        }
    return documented


# An OpenAI-compatible route answers JSON, or server-sent events when the body asks to stream.
OPENAI_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/event-stream": {}}},
    **errors(400, 401, 408, 413, 429, 502, 504, provider=True),
}
ADMIN_ERRORS = errors(400, 401, 404, 503)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that a route parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def openai_route(model: type[BaseModel]) -> dict[str, Any]:
    """Keyword arguments documenting an OpenAI-compatible route: its ``model`` body, the
    cache-control header, and its answers."""
    extra = {**json_body(model), "parameters": [CONTROL_PARAMETER]}
    return {"openapi_extra": extra, "responses": OPENAI_RESPONSES}


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _hoist_definitions(document)
            _declare_security(document)
            app.openapi_schema = document
        return app.openapi_schema

    # FastAPI's documented way to publish a document of one's own is to replace this method.
    app.openapi = openapi  # type: ignore[method-assign]


def _hoist_definitions(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            for name, definition in node.pop("$defs", {}).items():
                components[name] = visit(definition)
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item) for item in node]
        if isinstance(node, str) and node.startswith(_DEFS):
            return _COMPONENTS + node.removeprefix(_DEFS)
        return node

    document["paths"] = visit(document["paths"])


def _declare_security(document: dict[str, Any]) -> None:
    schemes = document["components"].setdefault("securitySchemes", {})
    schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            if path.startswith("/admin"):
                operation["security"] = [{"bearer": []}]
            elif path.startswith("/v1") or path == "/process_prompt":
                operation["security"] = [{"bearer": []}, {}]
