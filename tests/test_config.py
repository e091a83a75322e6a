"""Settings: flags beat variables, variables beat the file; bad values name themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from frugal.config import Settings, load_settings
from frugal.errors import SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FRUGAL_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.port == 8080
    assert settings.upstream_base_url is None
    assert settings.upstream_max_retries == 2


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "frugal.yaml"
    config.write_text("port: 7000\nupstream_max_retries: 5\ndefault_model: from-file\n")
    monkeypatch.setenv("FRUGAL_PORT", "7100")
    monkeypatch.setenv("FRUGAL_UPSTREAM_MAX_RETRIES", "4")
    settings = load_settings(config_file=config, port=7200, upstream_max_retries=None)
    assert settings.port == 7200  # flag
    assert settings.upstream_max_retries == 4  # variable; a flag left as None is "not given"
    assert settings.default_model == "from-file"  # file


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRUGAL_UPSTREAM_MAX_RETRIES", "lots"),
        ("FRUGAL_PORT", "70000"),
        ("FRUGAL_UPSTREAM_BASE_URL", "not a url"),
        ("FRUGAL_LOG_LEVEL", "chatty"),
    ],
)
def test_a_bad_variable_names_the_setting_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_an_unknown_key_in_the_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "frugal.yaml"
    config.write_text("cache_treshold: 0.9\n")
    with pytest.raises(SettingsError, match="cache_treshold"):
        load_settings(config_file=config)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(config_file=tmp_path / "absent.yaml")


def test_a_bad_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "frugal.yaml"
    config.write_text("upstream_api_key: [sk-leaky-value]\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config)
    assert "sk-leaky-value" not in str(caught.value)


def test_serve_refuses_to_start_on_a_bad_value() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "frugal", "serve", "--upstream", "http://127.0.0.1:1/v1"],
        env={"FRUGAL_UPSTREAM_TIMEOUT_S": "-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FRUGAL_UPSTREAM_TIMEOUT_S" in result.stderr and "'-1'" in result.stderr


def test_serve_needs_an_upstream() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "frugal", "serve"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FRUGAL_UPSTREAM_BASE_URL" in result.stderr


def test_settings_type_is_the_public_one() -> None:
    assert isinstance(load_settings(), Settings)


def test_an_empty_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_ADMIN_KEY", "")
    monkeypatch.setenv("FRUGAL_UPSTREAM_API_KEY", "  ")
    settings = load_settings()
    assert settings.admin_key is None and settings.upstream_api_key is None
