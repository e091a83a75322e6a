"""`GET /metrics` behind ``FRUGAL_METRICS_KEY``: open by default, as scrapers expect; with the key
set, only ``Authorization: Bearer <key>`` reads it, anything else gets OpenAI's 401, and the key
appears nowhere in the log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frugal.config import load_settings
from frugal.errors import SettingsError
from tests.api.test_fuzz import SEED, schemathesis
from tests.conftest import Stack, StackFactory

METRICS_KEY = "metrics-test-key-8c3a71f0"


@pytest.fixture(scope="module")
def keyed(make_stack: StackFactory) -> Stack:
    return make_stack(env={"FRUGAL_METRICS_KEY": METRICS_KEY, "FRUGAL_CACHE_MODE": "off"})


def metrics(stack: Stack, authorization: str | None = None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(stack.gateway.url + "/metrics", headers=headers)


def assert_openai_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    assert error["message"]


def assert_prometheus_text(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "frugal_requests" in names


def test_without_a_key_metrics_need_the_metrics_key(keyed: Stack) -> None:
    assert_openai_401(metrics(keyed))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-the-metrics-key",
        f"Bearer {METRICS_KEY}x",
        f"Basic {METRICS_KEY}",  # the right secret under another scheme is not a bearer key
        "Bearer",
        "",
    ],
)
def test_a_wrong_key_gets_a_401(keyed: Stack, authorization: str) -> None:
    assert_openai_401(metrics(keyed, authorization))


def test_the_admin_key_is_not_the_metrics_key(keyed: Stack) -> None:
    with keyed.admin() as admin:
        assert_openai_401(admin.get("/metrics"))


def test_the_metrics_key_reads_the_metrics(keyed: Stack) -> None:
    assert_prometheus_text(metrics(keyed, f"Bearer {METRICS_KEY}"))
    assert_prometheus_text(metrics(keyed, f"bearer  {METRICS_KEY}"))


def test_the_metrics_key_is_never_logged(keyed: Stack) -> None:
    metrics(keyed, f"Bearer {METRICS_KEY}")
    metrics(keyed, f"Bearer {METRICS_KEY}-almost")
    metrics(keyed)
    log = keyed.gateway.log()
    assert log  # the gateway did log (start-up, requests): the check below has text to search
    assert METRICS_KEY not in log


def test_without_the_setting_metrics_stay_open(stack: Stack) -> None:
    assert_prometheus_text(metrics(stack))
    assert_prometheus_text(metrics(stack, "Bearer anything at all"))


def test_the_document_says_metrics_may_answer_401(stack: Stack) -> None:
    document = httpx.get(stack.gateway.url + "/openapi.json").json()
    operation = document["paths"]["/metrics"]["get"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == error
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert operation["security"] == [{"bearer": []}, {}]  # a bearer key, when one is set


def test_the_401_is_what_the_document_says(keyed: Stack) -> None:
    """schemathesis, every check, on /metrics alone: it sends the admin key (`schemathesis.toml`),
    which is not the metrics key, so every answer is the 401 and must match the document."""
    returncode, report = schemathesis(
        keyed.gateway.url, "--include-path", "/metrics", "--seed", SEED, timeout_s=300
    )
    assert returncode == 0, report[-6000:]
    assert "Selected: 1/" in report and "Tested: 1" in report, report[-3000:]


def test_an_empty_metrics_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_METRICS_KEY", "  ")
    assert load_settings().metrics_key is None


def test_the_metrics_key_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_METRICS_KEY", METRICS_KEY)
    settings = load_settings()
    assert settings.metrics_key is not None
    assert settings.metrics_key.get_secret_value() == METRICS_KEY
    assert METRICS_KEY not in repr(settings) and METRICS_KEY not in str(settings)


def test_a_bad_metrics_key_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "frugal.yaml"
    config.write_text(f"metrics_key: [{METRICS_KEY}]\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config)
    assert "metrics_key" in str(caught.value)
    assert METRICS_KEY not in str(caught.value)
