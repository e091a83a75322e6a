"""`frugal.langchain.FrugalCache` as LangChain's LLM cache, with langchain-openai's
`ChatOpenAI` pointed at a real `frugal sim` process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from frugal.langchain import FrugalCache, langchain_key
from tests.conftest import CANARY_KEY
from tests.library.conftest import Sim

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "What's the capital of France?"


@pytest.fixture
def cache(settings: dict[str, Any]) -> Iterator[FrugalCache]:
    frugal_cache = FrugalCache(**settings)
    set_llm_cache(frugal_cache)
    yield frugal_cache
    set_llm_cache(None)
    frugal_cache.close()


def chat(sim: Sim, **fields: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=sim.base_url, api_key=CANARY_KEY, model="sim-small", **fields)


def test_two_paraphrases_make_one_upstream_call(cache: FrugalCache, sim: Sim) -> None:
    model = chat(sim)
    first = model.invoke(FRANCE)
    second = model.invoke(FRANCE_PARAPHRASE)
    assert isinstance(second, AIMessage)
    assert FRANCE in str(first.content)  # the simulator names what it answered
    assert second.content == first.content
    assert sim.calls() == 1


def test_two_temperatures_make_two_upstream_calls(cache: FrugalCache, sim: Sim) -> None:
    chat(sim, temperature=0.2).invoke(FRANCE)
    chat(sim, temperature=0.7).invoke(FRANCE)
    chat(sim, temperature=0.7).invoke(FRANCE_PARAPHRASE)
    assert sim.calls() == 2


async def test_async_and_the_conversation_is_the_scope(cache: FrugalCache, sim: Sim) -> None:
    model = chat(sim)
    await model.ainvoke(FRANCE)
    assert (await model.ainvoke(FRANCE_PARAPHRASE)).content == model.invoke(FRANCE).content
    await model.ainvoke([SystemMessage("Answer in French."), HumanMessage(FRANCE_PARAPHRASE)])
    earlier = [HumanMessage("Hello"), AIMessage("Hi."), HumanMessage(FRANCE_PARAPHRASE)]
    await model.ainvoke(earlier)
    assert sim.calls() == 3
    await cache.aclear()
    await model.ainvoke(FRANCE)
    assert sim.calls() == 4


def test_the_key_embeds_the_last_human_text_and_hashes_the_rest() -> None:
    llm = '{"kwargs": {"model_name": "sim-small"}}---[]'
    alone = langchain_key(dumps([HumanMessage(FRANCE)]), llm, partition="t")
    system = [SystemMessage("Be brief."), HumanMessage(FRANCE)]
    briefly = langchain_key(dumps(system), llm, partition="t")
    other_llm = langchain_key(dumps([HumanMessage(FRANCE)]), llm + " ", partition="t")
    plain = langchain_key(FRANCE, llm, partition="t")
    assert alone is not None and briefly is not None and other_llm is not None
    assert plain is not None
    assert alone.prompt == briefly.prompt == plain.prompt == FRANCE
    assert len({alone.scope, briefly.scope, other_llm.scope, plain.scope}) == 4
    assert alone.labels["model"] == "sim-small"
    answered = dumps([HumanMessage(FRANCE), AIMessage("Paris")])
    assert langchain_key(answered, llm, partition="t") is None
