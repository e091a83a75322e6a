"""Reading a JSON request body and its fields; each failure is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

from frugal.sim.rejected import invalid


def json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid("The request body is not valid JSON.", None) from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None)
    return body


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required and must be a non-empty string.", "model")
    return model


def integer(body: dict[str, Any], name: str, maximum: int) -> int | None:
    """An optional count in [1, maximum]."""
    value = body.get(name)
    if value is None:
        return None
    # bool is a subclass of int, but `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise invalid(f"'{name}' must be an integer in [1, {maximum}], got {value!r}.", name)
    return value


def number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """An optional number in [low, high]."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"'{name}' must be a number in [{low}, {high}], got {value!r}.", name)
    return float(value)


def boolean(
    body: dict[str, Any], name: str, param: str | None = None, *, default: bool = False
) -> bool:
    """An optional boolean; ``param`` names it when it sits inside another field."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"'{param or name}' must be a boolean, got {value!r}.", param or name)
    return value
