"""`wrap`: an official OpenAI SDK client whose cached routes go through frugal in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai

from frugal.config import load_settings
from frugal.library.engine import Engine
from frugal.library.loop import LoopThread
from frugal.library.transport import AsyncFrugalTransport, FrugalTransport
from frugal.tenants import OPEN_TENANT

C = TypeVar("C", openai.OpenAI, openai.AsyncOpenAI)

# The client's own base URL and key are the upstream's: a setting naming another is a mistake.
_FROM_THE_CLIENT = ("upstream_base_url", "upstream_api_key")


def wrap(
    client: C, *, tenant: str = OPEN_TENANT, config_file: Path | None = None, **settings: Any
) -> C:
    """A copy of ``client`` (``openai.OpenAI`` or ``openai.AsyncOpenAI``) whose
    ``chat.completions``, ``responses``, ``completions`` and ``embeddings`` ``create`` calls,
    streamed or not, are answered by frugal's pipeline in this process: its cache (exact and
    semantic tiers, scope rules, TTL, the partition of ``tenant``), coalescing and batching,
    with the client's own ``base_url`` and ``api_key`` as the upstream. Every other call goes
    to the provider untouched.

    Settings are those of the gateway (`frugal.config.Settings`): ``settings`` keyword
    arguments (``cache_threshold=0.85``) over ``FRUGAL_*`` variables over ``config_file``.
    Answers are the SDK's own typed objects; ``with_raw_response`` shows ``x-frugal-cache``;
    ``extra_headers={"x-frugal-cache-control": "no-cache"}`` works as with the gateway.

    The sync client runs the pipeline on one background event-loop thread, started here (the
    cache opens here, so a bad setting or a missing model raises here); the async client
    opens it in its event loop on the first call and must stay in that loop. ``close()`` /
    ``await aclose()`` (or leaving ``with`` / ``async with``) closes what frugal opened and
    stops that thread; the ``client`` given stays open and yours. Raises `SettingsError`
    for a bad setting, `TypeError` for another kind of client.
    """
    given = sorted(set(settings) & set(_FROM_THE_CLIENT))
    if given:
        raise TypeError(f"wrap() takes the upstream from the client, not from {', '.join(given)}")
    options = load_settings(
        config_file=config_file,
        upstream_base_url=str(client.base_url),
        upstream_api_key=client.api_key or None,
        **settings,
    )
    engine = Engine(options, tenant=tenant)
    base_url = httpx.URL(str(client.base_url))
    if isinstance(client, openai.AsyncOpenAI):
        async_transport = AsyncFrugalTransport(
            engine, base_url=base_url, passthrough=httpx.AsyncClient()
        )
        async_http = httpx.AsyncClient(
            transport=async_transport, follow_redirects=True, trust_env=False
        )
        # The SDK accepts httpx's clients beside its own httpx2 ones.
        return client.with_options(http_client=async_http)  # type: ignore[arg-type]
    if isinstance(client, openai.OpenAI):
        loop = LoopThread()
        try:
            loop.run(engine.open())
        except BaseException:
            loop.run(engine.aclose())
            loop.close()
            raise
        transport = FrugalTransport(
            engine, loop=loop, base_url=base_url, passthrough=httpx.Client()
        )
        http = httpx.Client(transport=transport, follow_redirects=True, trust_env=False)
        return client.with_options(http_client=http)  # type: ignore[arg-type]
    raise TypeError(f"wrap() takes an openai.OpenAI or openai.AsyncOpenAI, not {type(client)}")
