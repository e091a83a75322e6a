"""frugal's semantic cache as LangChain's LLM cache: ``set_llm_cache(FrugalCache())``.

LangChain asks its cache with two strings. ``prompt`` is, for a chat model, its messages
serialised by ``langchain_core.load.dumps`` (a JSON list of ``{"lc": 1, "type":
"constructor", "id": [..., "HumanMessage"], "kwargs": {"content": ..., "type": "human"}}``),
and for a plain LLM the prompt text itself. ``llm_string`` describes the model and every
parameter of the call (model name, temperature, stop words, ...).

As in the gateway, only the question is embedded: the last human message's text (a plain
LLM's whole prompt). Everything else is the scope, compared exactly as a hash: the
``llm_string``, every earlier message (system prompt, earlier turns) and the last message's
other fields. So a paraphrase asked of the same model with the same parameters and history is
a hit, and a change of temperature, model or conversation is a miss. A conversation that does
not end with a human message, or whose last message holds more than text, is not cached.
Entries are kept in the tenant's partition, with the same store, model id and TTL as the
gateway's (`frugal.assembly.open_cache`); their scopes never equal a gateway request's.

Needs ``langchain-core`` (``pip install 'frugal[langchain]'``); ``import frugal`` never
imports this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from frugal.assembly import open_cache
from frugal.cache import CacheKey, SemanticCache, cache_key
from frugal.config import load_settings
from frugal.library import LoopThread
from frugal.provider import Endpoint
from frugal.tenants import OPEN_TENANT

__all__ = ["FrugalCache", "langchain_key"]

# The stored answer's ``object``: what an entry written by this cache holds.
GENERATIONS = "langchain.generations"


class FrugalCache(BaseCache):
    """A `langchain_core.caches.BaseCache` on frugal's semantic cache (exact and semantic
    tiers, scope, TTL, the partition of ``tenant``).

    Settings as the gateway's (`frugal.config.Settings`): keyword arguments over
    ``FRUGAL_*`` variables over ``config_file``; the cache settings apply
    (``cache_threshold``, ``cache_ttl_s``, ``store``, ``embedder_model``, ...), the upstream
    ones do not (LangChain calls the model itself). The cache runs on one background
    event-loop thread, started here (a missing model raises here); the async methods await
    it without blocking the caller's loop. `close` stops it and closes the store.
    """

    def __init__(
        self, *, tenant: str = OPEN_TENANT, config_file: Path | None = None, **settings: Any
    ) -> None:
        self._settings = load_settings(config_file=config_file, **settings)
        self._tenant = tenant
        self._stack = AsyncExitStack()
        self._loop = LoopThread("frugal-langchain")
        try:
            self._cache = self._loop.run(self._open())
        except BaseException:
            self.close()
            raise

    async def _open(self) -> SemanticCache:
        cache, _ = await open_cache(self._settings, self._stack)
        return cache

    # ---- BaseCache -----------------------------------------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._loop.run(self._lookup(prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._loop.run(self._update(prompt, llm_string, return_val))

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of the tenant's partition (with a store shared with a gateway,
        the gateway's entries of that partition too)."""
        self._loop.run(self._cache.invalidate(partition=self._tenant))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await asyncio.wrap_future(self._loop.submit(self._lookup(prompt, llm_string)))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await asyncio.wrap_future(self._loop.submit(self._update(prompt, llm_string, return_val)))

    async def aclear(self, **kwargs: Any) -> None:
        await asyncio.wrap_future(self._loop.submit(self._cache.invalidate(partition=self._tenant)))

    def close(self) -> None:
        """Close the store and the embedder, and stop the background thread."""
        if self._loop.running:
            try:
                self._loop.run(self._stack.aclose())
            finally:
                self._loop.close()

    # ---- on the loop thread --------------------------------------------------------------

    async def _lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        key = langchain_key(prompt, llm_string, partition=self._tenant)
        if key is None:
            return None
        hit = (await self._cache.lookup(key)).hit
        if hit is None or hit.response.get("object") != GENERATIONS:
            return None
        return [_generation(stored) for stored in hit.response["generations"]]

    async def _update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        key = langchain_key(prompt, llm_string, partition=self._tenant)
        if key is None:
            return
        stored = {"object": GENERATIONS, "generations": [_stored(g) for g in return_val]}
        await self._cache.save(key, stored)


def langchain_key(prompt: str, llm_string: str, *, partition: str) -> CacheKey | None:
    """The cache key of a LangChain call: the question is the last human message's text (a
    plain LLM's prompt), the scope the ``llm_string`` (hashed) and everything else of the
    prompt; ``None`` when the prompt does not end with a human text message."""
    messages = _messages(prompt)
    if messages is None:
        asked: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    else:
        if not messages or not isinstance(messages[-1].get("kwargs"), dict):
            return None
        last = messages[-1]["kwargs"]
        if last.get("type") != "human" or not isinstance(last.get("content"), str):
            return None
        rest = {name: value for name, value in last.items() if name != "content"}
        # Earlier messages are kept whole in the scope; the last one without its text.
        earlier = [{"role": "langchain", "message": message} for message in messages[:-1]]
        asked = [*earlier, {"role": "user", "content": last["content"], "langchain": rest}]
    body = {
        "model": _model_name(llm_string),
        "messages": asked,
        "langchain_llm": hashlib.sha256(llm_string.encode()).hexdigest(),
    }
    return cache_key(Endpoint.CHAT, body, partition=partition)


def _messages(prompt: str) -> list[dict[str, Any]] | None:
    """A chat model's serialised messages, or ``None`` for a plain prompt."""
    if not prompt.startswith("["):
        return None
    try:
        parsed = json.loads(prompt)
    except json.JSONDecodeError:
        return None
    if not isinstance(parsed, list) or not all(
        isinstance(item, dict) and item.get("lc") == 1 for item in parsed
    ):
        return None
    return parsed


def _model_name(llm_string: str) -> str:
    """The model named in a chat model's ``llm_string`` (for the entry's labels only)."""
    try:
        described = json.loads(llm_string.split("---", 1)[0])
    except json.JSONDecodeError:
        return ""
    kwargs = described.get("kwargs") if isinstance(described, dict) else None
    if not isinstance(kwargs, dict):
        return ""
    name = kwargs.get("model_name", kwargs.get("model", ""))
    return name if isinstance(name, str) else ""


def _stored(generation: Generation) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "text": generation.text,
        "generation_info": generation.generation_info,
    }
    if isinstance(generation, ChatGeneration):
        stored["message"] = message_to_dict(generation.message)
    return stored


def _generation(stored: dict[str, Any]) -> Generation:
    info = stored.get("generation_info")
    if "message" in stored:
        message = messages_from_dict([stored["message"]])[0]
        return ChatGeneration(message=message, generation_info=info)
    return Generation(text=stored["text"], generation_info=info)
