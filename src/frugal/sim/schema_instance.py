"""A JSON value that fits a JSON schema, for the simulator's structured answers and tool calls.

`instance_of` reads the parts of JSON Schema that pydantic and OpenAI's strict mode write:
``type`` (a list of types too: the first that is not ``"null"``), ``properties`` (all of them
are given a value, required or not), ``required``, ``additionalProperties``, ``items``,
``prefixItems``, ``minItems``, ``enum``, ``const``, ``anyOf``/``oneOf`` (the first branch that
does not recurse into a definition already being filled), ``allOf`` (merged), ``$ref`` (any
JSON pointer into the root, so ``#/$defs/...`` and ``#/definitions/...``), string
``minLength``/``maxLength``/``format`` and number bounds. ``pattern`` and ``not`` are ignored.

Strings are the answer text; numbers are 0, or the bound nearest it; booleans are true; arrays
have their ``minItems``, empty unless it says otherwise.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 32  # nesting beyond it means a schema that only an infinite value fits
_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "P0D",
    "email": "sim@example.com",
    "idn-email": "sim@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "url": "https://example.com/",
}


class SchemaError(ValueError):
    """The schema cannot be read: a ``$ref`` to nothing, or a value that is not a schema."""


def instance_of(schema: Mapping[str, Any] | bool, *, text: str) -> Any:
    """A value valid under ``schema``, its strings ``text``; raises `SchemaError`.

    >>> instance_of({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}},
    ...             text="hi")
    {'n': 3}
    """
    return _Filler(schema, text).fill(schema, refs=(), depth=0)


class _Filler:
    def __init__(self, root: Mapping[str, Any] | bool, text: str) -> None:
        self._root, self._text = root, text

    def fill(self, schema: object, *, refs: tuple[str, ...], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise SchemaError("the schema nests too deeply to be filled")
        if schema is True or schema == {}:
            return self._text
        if not isinstance(schema, Mapping):
            raise SchemaError(f"not a schema: {schema!r}")
        deeper = depth + 1
        if isinstance(ref := schema.get("$ref"), str):
            return self.fill(self._resolve(ref), refs=(*refs, ref), depth=deeper)
        if "const" in schema:
            return schema["const"]
        if isinstance(enum := schema.get("enum"), list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            if isinstance(branches := schema.get(key), list) and branches:
                return self.fill(_pick(branches, refs), refs=refs, depth=deeper)
        if isinstance(parts := schema.get("allOf"), list) and parts:
            return self.fill(self._merge(parts, schema), refs=refs, depth=deeper)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, refs, deeper)
        if kind == "array":
            return self._array(schema, refs, deeper)
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._text

    def _resolve(self, ref: str) -> Any:
        """A JSON pointer into the root schema (``#/$defs/Name``)."""
        if not ref.startswith("#"):
            raise SchemaError(f"only references into the schema itself are followed: {ref!r}")
        target: Any = self._root
        for token in filter(None, ref[1:].split("/")):
            key = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or key not in target:
                raise SchemaError(f"the reference {ref!r} names nothing in the schema")
            target = target[key]
        return target

    def _merge(self, parts: list[Any], schema: Mapping[str, Any]) -> dict[str, Any]:
        """``allOf``: one schema with every part's keywords, properties and required names."""
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in parts:
            while isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
                part = self._resolve(part["$ref"])
            if not isinstance(part, Mapping):
                continue
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: Mapping[str, Any], refs: tuple[str, ...], depth: int) -> Any:
        properties = schema.get("properties") or {}
        value = {name: self.fill(sub, refs=refs, depth=depth) for name, sub in properties.items()}
        extra = schema.get("additionalProperties", True)
        for name in schema.get("required") or ():
            if name not in value:
                value[name] = self.fill(extra if extra is not False else {}, refs=refs, depth=depth)
        return value

    def _array(self, schema: Mapping[str, Any], refs: tuple[str, ...], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        count = max(int(schema.get("minItems", 0)), len(prefix))
        items = schema.get("items", {})
        values = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            values.append(self.fill(sub, refs=refs, depth=depth))
        if schema.get("uniqueItems") and count > 1:
            values = [_distinct(value, i) for i, value in enumerate(values)]
        return values

    def _string(self, schema: Mapping[str, Any]) -> str:
        form = schema.get("format")
        if isinstance(form, str) and form.startswith("uuid"):
            version = int(form[4:]) if form[4:].isdigit() else 4
            digest = hashlib.sha256(self._text.encode()).digest()[:16]
            return str(uuid.UUID(bytes=digest, version=version))
        text = _FORMATS.get(form, self._text) if isinstance(form, str) else self._text
        shortest, longest = int(schema.get("minLength", 0)), schema.get("maxLength")
        if longest is not None:
            text = text[: int(longest)]
        return text + "." * (shortest - len(text)) if len(text) < shortest else text


def _pick(branches: list[Any], refs: tuple[str, ...]) -> Any:
    """The first branch, unless it recurses into a definition being filled (``next: Node |
    None``): then the first that does not, so the value ends."""
    for branch in branches:
        if not (isinstance(branch, Mapping) and branch.get("$ref") in refs):
            return branch
    return branches[0]


def _type_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[0] if kinds else None
    if kind is None:
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
    return kind if isinstance(kind, str) else None


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """0 when the bounds allow it, else the first value near a bound (or between two) that
    fits them all and ``multipleOf``; 0 when none of those does."""
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft 4 writes an exclusive bound as a flag on minimum or maximum.
    if isinstance(above, bool):
        low, above = (None, low) if above else (low, None)
    if isinstance(below, bool):
        high, below = (None, high) if below else (high, None)
    step = schema.get("multipleOf")

    def fits(value: float) -> bool:
        return (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
            and (not step or math.isclose(value / step, round(value / step), abs_tol=1e-9))
        )

    bounds = [b for b in (low, high, above, below) if isinstance(b, int | float)]
    seeds = [0, *bounds, *(b + 1 for b in bounds), *(b - 1 for b in bounds)]
    seeds += [(a + b) / 2 for a in bounds for b in bounds]
    for seed in seeds:
        near = [math.ceil(seed / step) * step, math.floor(seed / step) * step] if step else [seed]
        for value in near:
            for candidate in (math.ceil(value), math.floor(value)) if integer else (value,):
                if fits(candidate):
                    return int(candidate) if integer else float(candidate)
    return 0 if integer else 0.0


def _distinct(value: Any, i: int) -> Any:
    """The i-th of items that must differ: strings and numbers told apart by their index."""
    if isinstance(value, str):
        return f"{value} {i}" if i else value
    if isinstance(value, bool):
        return value if i == 0 else not value
    if isinstance(value, int | float):
        return value + i
    return value
