"""Provider faults under concurrent load: every client gets its own answer or a clean error.

Forty SDK clients at once (chats, streamed chats, completions, embeddings), batched together
into shared provider calls, against a provider that fails in one way: 500s, 429s with
Retry-After, slow answers, or connections dropped mid-response. A client never receives another
client's answer, never hangs, and a failure is one of the SDK's own exceptions with a status that
names the fault. Retries are counted (`frugal_upstream_retries_total`) and bounded.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

import httpx
import numpy as np
import openai
import pytest

from frugal.sim.wire import DEFAULT_EMBEDDING_DIMENSIONS, embedding_of
from tests.conftest import Stack, StackFactory

MAX_RETRIES = 2
CLIENTS = 40
WORDS = "amber basil cedar delta ember fjord garnet harbor indigo juniper kelp lotus".split()


@dataclass(frozen=True)
class Fault:
    sim_args: list[str]
    rejected_as: str | None  # the sim's counter that proves the fault was in play
    statuses: frozenset[int]  # what a client may see instead of its answer
    env: dict[str, str]


FAULTS = {
    "500s": Fault(["--error-rate", "0.4", "--seed", "11"], "errors", frozenset({502}), {}),
    "429s": Fault(["--rpm", "6"], "rate_limited", frozenset({429}), {}),
    "slow": Fault(
        ["--slow-rate", "0.4", "--slow-ms", "3000", "--seed", "12"],
        None,  # no counter: a 504 proves it
        frozenset({504}),
        {"FRUGAL_UPSTREAM_TIMEOUT_S": "0.5"},
    ),
    "drops": Fault(["--drop-rate", "0.4", "--seed", "13"], "dropped", frozenset({502}), {}),
}


def expected_text(model: str, prompt: str) -> str:
    return f"[{model}] Answer to: {prompt}"  # the simulator's answer, naming its prompt


@dataclass
class Outcome:
    kind: str
    answered: bool
    status: int | None = None


async def one_client(client: openai.AsyncOpenAI, kind: str, prompt: str) -> Outcome:
    """One request; asserts that a success is this request's own answer."""
    model = "sim-small"
    try:
        if kind == "chat":
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
            assert reply.choices[0].message.content == expected_text(model, prompt)
        elif kind == "stream":
            parts: list[str] = []
            try:
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}], stream=True
                )
                async for chunk in stream:
                    parts.extend(choice.delta.content or "" for choice in chunk.choices)
            except openai.APIStatusError:
                raise
            except openai.APIError:
                # Broken off after its first byte: what arrived is the start of its own answer.
                assert expected_text(model, prompt).startswith("".join(parts))
                return Outcome(kind, answered=False)
            assert "".join(parts) == expected_text(model, prompt)
        elif kind == "completion":
            completion = await client.completions.create(model=model, prompt=prompt)
            assert completion.choices[0].text == expected_text(model, prompt)
        else:
            embedded = await client.embeddings.create(model="sim-embed", input=prompt)
            wanted = embedding_of(prompt, DEFAULT_EMBEDDING_DIMENSIONS)
            assert np.allclose(embedded.data[0].embedding, wanted, atol=1e-6)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        assert isinstance(body.get("message"), str) and isinstance(body.get("type"), str), exc
        return Outcome(kind, answered=False, status=exc.status_code)
    return Outcome(kind, answered=True)


def retries_counted(stack: Stack) -> int:
    text = httpx.get(stack.gateway.url + "/metrics").text
    found = re.search(r"^frugal_upstream_retries_total (\S+)$", text, re.MULTILINE)
    assert found is not None
    return int(float(found[1]))


@pytest.mark.parametrize("name", list(FAULTS))
async def test_each_client_gets_its_own_answer_or_a_clean_error(
    make_stack: StackFactory, name: str
) -> None:
    fault = FAULTS[name]
    stack = make_stack(
        sim_args=fault.sim_args,
        env={
            # The cache off: every request must reach the faulty provider.
            "FRUGAL_CACHE_MODE": "off",
            "FRUGAL_UPSTREAM_MAX_RETRIES": str(MAX_RETRIES),
            "FRUGAL_BATCH_WINDOW_MS": "20",
            **fault.env,
        },
    )
    rng = random.Random(name)
    kinds = ["chat", "stream", "completion", "embedding"]
    requests = [
        (kinds[i % 4], f"{rng.choice(WORDS)} {rng.choice(WORDS)} question {i} of {name}")
        for i in range(CLIENTS)
    ]
    async with openai.AsyncOpenAI(
        base_url=stack.base_url, api_key="k", max_retries=0, timeout=30
    ) as client:
        outcomes = await asyncio.gather(*(one_client(client, *r) for r in requests))

    refused = {o.status for o in outcomes if not o.answered and o.status is not None}
    assert refused <= fault.statuses, f"unexpected statuses {refused - fault.statuses}"
    assert any(o.answered for o in outcomes), "the gateway still answers through the fault"
    sim = stack.sim_stats()
    if fault.rejected_as is None:
        assert refused, "the fault was in play"
    else:
        assert sim["rejected"][fault.rejected_as] > 0, "the fault was in play"
    with stack.admin() as admin:
        upstream = admin.get("/admin/stats").json()["upstream"]
    retries = retries_counted(stack)
    # Every call the provider saw is a first try the gateway made or a retry it counted...
    assert sim["calls"] == upstream["calls"] + retries
    # ...and no call was tried more than MAX_RETRIES times again.
    assert retries <= MAX_RETRIES * upstream["calls"]
    if name in ("500s", "drops"):
        assert retries > 0, "the fault was retried"
