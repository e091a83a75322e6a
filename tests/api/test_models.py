"""The embedding model is a choice, and a cache entry belongs to the model that embedded it:
through real gateways, a change of model costs misses (never another model's vectors compared),
until `frugal cache reembed` gives the stored prompts the new model's vectors.

The second model is the base model's graph under a manifest of its own (`tests.cache.tuned`):
the same vectors under another id, so a miss here can only come from the model filter."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from frugal.cache.store import BASE_MODEL_ID
from frugal.local.redis_server import RedisServer
from tests.api.test_cache import FRANCE, FRANCE_PARAPHRASE, MONA_LISA, ask
from tests.cache.tuned import model_id, tuned_copy
from tests.conftest import ADMIN_KEY, MODEL_DIR, Stack, StackFactory, redis_env, run_frugal

PROMPTS = [FRANCE, MONA_LISA, "How do I reverse a list in Python?"]
NO_STORE = "no-store"  # a miss that leaves the other model's entry where it is


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tuned_copy(MODEL_DIR, tmp_path_factory.mktemp("models") / "faq-model")


def outcome(stack: Stack, text: str, *, control: str | None = None) -> str:
    return ask(stack, text, control=control).headers["x-frugal-cache"]


def entries(stack: Stack) -> dict[str, str]:
    """Entry id -> the id of the model that embedded it."""
    with stack.admin() as admin:
        listed = admin.get("/admin/cache/entries").json()["data"]
    return {entry["id"]: entry["model"] for entry in listed}


def reembed(stack: Stack) -> httpx.Response:
    with stack.admin() as admin:
        response = admin.post("/admin/cache/reembed")
    response.raise_for_status()
    return response


def test_a_change_of_model_costs_misses_until_the_cache_is_reembedded(
    make_stack: StackFactory, tuned: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    before = make_stack(data_dir=data)
    for prompt in PROMPTS:
        assert outcome(before, prompt) == "miss"
    assert outcome(before, FRANCE_PARAPHRASE) == "hit"
    stored = entries(before)
    assert set(stored.values()) == {BASE_MODEL_ID} and len(stored) == 3
    before.gateway.stop()

    after = make_stack(data_dir=data, sim=before.sim, env={"FRUGAL_EMBEDDER_MODEL": str(tuned)})
    with after.admin() as admin:
        assert admin.get("/admin/stats").json()["cache"]["model"] == model_id(tuned)
    assert f"embedder model {model_id(tuned)}" in after.gateway.log()
    assert entries(after) == stored  # kept across the change, and listed
    for prompt in [*PROMPTS, FRANCE_PARAPHRASE]:  # the same vectors, yet never compared
        assert outcome(after, prompt, control=NO_STORE) == "miss"

    result = run_frugal(
        "cache", "reembed", "--url", after.gateway.url, env={"FRUGAL_ADMIN_KEY": ADMIN_KEY}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"re-embedded 3 of 3 entries with {model_id(tuned)}"
    for prompt in [*PROMPTS, FRANCE_PARAPHRASE]:
        assert outcome(after, prompt) == "hit"
    assert entries(after) == dict.fromkeys(stored, model_id(tuned))  # the same entries, moved
    again = reembed(after)
    assert again.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in again.text.splitlines()] == [
        {"done": 0, "total": 0, "reembedded": 0, "model": model_id(tuned)}
    ]


def test_replicas_of_two_models_share_a_redis_but_not_their_answers(
    make_stack: StackFactory, tuned: Path, redis_server: RedisServer
) -> None:
    env = redis_env(redis_server.url)
    base = make_stack(env=env)
    other = make_stack(env={**env, "FRUGAL_EMBEDDER_MODEL": str(tuned)}, sim=base.sim)
    assert outcome(base, FRANCE) == "miss"
    assert outcome(base, FRANCE_PARAPHRASE) == "hit"
    for prompt in (FRANCE, FRANCE_PARAPHRASE):
        assert outcome(other, prompt, control=NO_STORE) == "miss"

    lines = [json.loads(line) for line in reembed(other).text.splitlines()]
    assert lines[0] == {"done": 0, "total": 1, "reembedded": 0, "model": model_id(tuned)}
    assert lines[-1] == {"done": 1, "total": 1, "reembedded": 1, "model": model_id(tuned)}
    for prompt in (FRANCE, FRANCE_PARAPHRASE):
        assert outcome(other, prompt) == "hit"
        assert outcome(base, prompt, control=NO_STORE) == "miss"


def test_model_list_names_each_model_its_id_and_its_figures(tuned: Path) -> None:
    result = run_frugal(
        "model", "list", env={"FRUGAL_EMBEDDER_MODEL": str(tuned), "COLUMNS": "300"}
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert BASE_MODEL_ID in rows["base"] and "exported base" in rows["base"]
    mine = rows[str(tuned)]
    assert model_id(tuned) in mine and "directory" in mine and "yes" in mine
    assert "0.800 → 0.900 at 0.40 (fp32)" in mine


def test_model_list_fails_for_a_choice_that_names_nothing() -> None:
    result = run_frugal("model", "list", env={"FRUGAL_EMBEDDER_MODEL": "nope"})
    assert result.returncode == 2
    assert "FRUGAL_EMBEDDER_MODEL = 'nope'" in result.stderr
