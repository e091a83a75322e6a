"""One store, two doors: a gateway and a wrapped client on one Redis answer each other's
questions (same key schema, scope hash and embedding model id)."""

from __future__ import annotations

from typing import Any

import openai

import frugal
from frugal.local.redis_server import RedisServer
from tests.conftest import CANARY_KEY, MODEL_DIR, StackFactory, redis_env

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


def outcome(client: openai.OpenAI, text: str, model: str) -> str:
    messages = [{"role": "user", "content": text}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    assert FRANCE in (raw.parse().choices[0].message.content or "")
    return raw.headers["x-frugal-cache"]


def test_the_library_and_the_gateway_share_hits_both_ways(
    make_stack: StackFactory, redis_server: RedisServer, tmp_path: Any
) -> None:
    env = redis_env(redis_server.url)
    stack = make_stack(env=env)
    settings = {name.removeprefix("FRUGAL_").lower(): value for name, value in env.items()}
    through_gateway = openai.OpenAI(base_url=stack.base_url, api_key="k", max_retries=0)
    given = openai.OpenAI(base_url=stack.sim.url + "/v1", api_key=CANARY_KEY)
    with frugal.wrap(given, data_dir=tmp_path, model_dir=MODEL_DIR, **settings) as library:
        assert outcome(library, FRANCE, "sim-small") == "miss"
        assert outcome(through_gateway, FRANCE_PARAPHRASE, "sim-small") == "hit"
        assert outcome(through_gateway, FRANCE, "sim-large") == "miss"
        assert outcome(library, FRANCE_PARAPHRASE, "sim-large") == "hit"
    assert stack.sim_stats()["calls"] == 2
