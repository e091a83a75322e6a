"""``/v1/models`` and ``/v1/moderations``, through the openai SDK, and the faults they honour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from frugal.config import Settings
from frugal.local.processes import start_frugal
from frugal.sim import DEFAULT_MODELS, SimConfig
from tests.sim.serving import SimFactory, sdk, stats


async def test_models_lists_the_default_names_and_retrieves_each(url: str) -> None:
    async with sdk(url) as client:
        listed = [model async for model in client.models.list()]
        one = await client.models.retrieve("sim-large")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("no-such-model")

    assert [model.id for model in listed] == list(DEFAULT_MODELS)
    assert {"sim-small", "sim-large", Settings().default_model} <= set(DEFAULT_MODELS)
    assert all(model.object == "model" and model.owned_by for model in listed)
    assert one == next(model for model in listed if model.id == "sim-large")
    assert missing.value.status_code == 404
    assert missing.value.code == "model_not_found"
    assert "no-such-model" in missing.value.message
    counted = stats(url)
    assert counted["endpoints"]["/v1/models"] == {"calls": 3, "prompts": 0, "tokens": 0}
    assert counted["rejected"]["not_found"] == 1


async def test_an_unlisted_model_is_still_answered(url: str) -> None:
    async with sdk(url) as client:
        reply = await client.chat.completions.create(
            model="anything-else", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "[anything-else] Answer to: hi"


async def test_moderations_give_one_result_per_input_and_flag_the_configured_text(
    make_sim: SimFactory,
) -> None:
    url = make_sim(flag_containing="forbidden")
    async with sdk(url) as client:
        many = await client.moderations.create(
            input=["a fine text", "a forbidden text", "another fine one"]
        )
        one = await client.moderations.create(input="forbidden", model="text-moderation-stable")

    assert many.id.startswith("modr-") and many.model == "omni-moderation-latest"
    assert [result.flagged for result in many.results] == [False, True, False]
    flagged = many.results[1]
    assert flagged.categories.harassment and not flagged.categories.violence
    assert flagged.category_scores.harassment > 0.5 > flagged.category_scores.violence
    assert not any(vars(many.results[0].categories).values())
    assert one.model == "text-moderation-stable" and one.results[0].flagged
    assert stats(url)["endpoints"]["/v1/moderations"] == {"calls": 2, "prompts": 4, "tokens": 0}


async def test_moderations_read_text_parts_as_one_input(url: str) -> None:
    parts = [
        {"type": "text", "text": "some words"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    async with sdk(url) as client:
        reply = await client.moderations.create(input=parts)  # type: ignore[arg-type]
    assert len(reply.results) == 1 and not reply.results[0].flagged


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": 3}, "input"),
        ({"input": [{"text": "no type"}]}, "input"),
        ({"input": "x", "model": 1}, "model"),
    ],
)
async def test_bad_moderation_bodies_get_a_400(
    url: str, body: dict[str, object], param: str
) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/moderations", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_the_new_routes_honour_the_key_the_rate_limit_and_reject_containing(
    make_sim: SimFactory,
) -> None:
    url = make_sim(require_api_key="sk-right", rpm=3, reject_containing="POISON")
    async with sdk(url, key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    async with sdk(url, key="sk-right") as client:
        await client.models.retrieve("sim-small")
        with pytest.raises(openai.BadRequestError) as poisoned:
            await client.moderations.create(input="POISON")
        await client.models.list()
        with pytest.raises(openai.RateLimitError):
            await client.moderations.create(input="fine")
    assert poisoned.value.body["param"] == "input"  # type: ignore[index]
    assert stats(url)["rejected"] == {
        "unauthorized": 1,
        "rate_limited": 1,
        "bad_request": 1,
        "errors": 0,
        "dropped": 0,
        "not_found": 0,
    }


async def test_error_and_drop_rates_reach_the_new_routes(make_sim: SimFactory) -> None:
    failing, dropping = make_sim(error_rate=1.0), make_sim(drop_rate=1.0)
    async with httpx.AsyncClient() as client:
        assert (await client.get(failing + "/v1/models")).status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(dropping + "/v1/moderations", json={"input": "x"})
    assert stats(failing)["rejected"]["errors"] == 1
    assert stats(dropping)["rejected"]["dropped"] == 1


def test_frugal_sim_takes_its_model_names_and_flag_text_from_flags(tmp_path: Path) -> None:
    sim = start_frugal(
        ["sim", "--call-latency-ms", "0", "--models", "alpha, beta", "--flag-containing", "zap"],
        log_dir=tmp_path,
    )
    try:
        with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
            names = [model.id for model in client.models.list()]
            flags = client.moderations.create(input=["zap it", "keep it"]).results
    finally:
        sim.stop()
    assert names == ["alpha", "beta"]
    assert [result.flagged for result in flags] == [True, False]


@pytest.mark.parametrize("models", [(), ("a", "")])
def test_config_needs_model_names(models: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="models"):
        SimConfig(models=models)


def test_frugal_sim_refuses_an_empty_model_list_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "frugal", "sim", "--models", ","],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("frugal: models must be") and "Traceback" not in result.stderr
