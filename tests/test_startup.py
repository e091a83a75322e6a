"""`frugal serve` starts wherever its data lives, and a start-up failure is one line, exit 2.

The gateway runs as a real child process: a fresh data directory must not need a new model
export, and each way start-up can fail (no model, a port in use, a keys file or data
directory it cannot use, a malformed Redis URL, a model it cannot load) ends with one line on
stderr that names the problem, exit code 2, and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from frugal.cache.export import ONNX_FILENAME
from frugal.local.processes import free_port, start_frugal
from tests.cache.tuned import model_id, tuned_copy
from tests.conftest import FAST_SIM, MODEL_DIR, ROOT

NOWHERE = "http://127.0.0.1:9/v1"  # never called: these gateways stop before serving


@pytest.fixture
def no_frugal_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The children see only the settings a test gives them (and the defaults)."""
    for name in list(os.environ):
        if name.startswith("FRUGAL_"):
            monkeypatch.delenv(name)


def test_a_fresh_data_dir_serves_with_the_model_the_install_exported(
    tmp_path: Path, no_frugal_settings: None
) -> None:
    # The install step, as `make install` runs it: from the checkout, with default settings.
    install = subprocess.run(
        [sys.executable, "-m", "frugal", "model", "export"],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert install.returncode == 0, install.stderr
    data_dir = tmp_path / "var" / "lib" / "frugal"
    sim = start_frugal(["sim", *FAST_SIM], log_dir=tmp_path)
    try:
        gateway = start_frugal(
            ["serve", "--upstream", sim.url + "/v1"],
            log_dir=tmp_path,
            env={"FRUGAL_DATA_DIR": str(data_dir)},
            ready_path="/readyz",
        )
        try:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi there"}]}
            first = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)
            second = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)
        finally:
            gateway.stop()
    finally:
        sim.stop()
    assert first.status_code == 200, first.text
    assert (first.headers["x-frugal-cache"], second.headers["x-frugal-cache"]) == ("miss", "hit")
    assert (data_dir / "cache.sqlite3").is_file()
    assert not (data_dir / "models").exists()  # the model stays where the install put it


def serve_fails(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run `frugal serve` expecting a start-up failure; its stderr lines."""
    result = subprocess.run(
        [sys.executable, "-m", "frugal", "serve", "--upstream", NOWHERE, *args],
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "FRUGAL_DATA_DIR": str(tmp_path / "data"),
            "FRUGAL_MODEL_DIR": str(MODEL_DIR),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr.splitlines()


def one_line(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    assert lines[0].startswith("frugal: ")
    return lines[0]


def test_a_model_dir_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_MODEL_DIR": str(empty)}))
    assert str(empty) in line and "frugal model export" in line


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_in_use_is_named(tmp_path: Path, port_in_use: int) -> None:
    line = one_line(serve_fails(tmp_path, "--host", "127.0.0.1", "--port", str(port_in_use)))
    assert f"127.0.0.1:{port_in_use}" in line and "in use" in line


def test_an_unreadable_keys_file_is_named(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.mkdir()  # a folder where the file should be
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_API_KEYS_FILE": str(keys)}))
    assert str(keys) in line and "keys file" in line


def test_a_data_dir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "occupied"
    blocker.write_text("a file where a folder should go")
    data_dir = blocker / "data"
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_DATA_DIR": str(data_dir)}))
    assert str(data_dir) in line and "FRUGAL_DATA_DIR" in line


@pytest.mark.parametrize(
    "url", ["localhost:6379", "redis://:hunter2-secret@localhost:port/0", "redis://:6379:7/0"]
)
def test_a_malformed_redis_url_is_named_without_its_password(tmp_path: Path, url: str) -> None:
    env = {"FRUGAL_STORE": "redis", "FRUGAL_REDIS_URL": url}
    line = one_line(serve_fails(tmp_path, env=env))
    assert "FRUGAL_REDIS_URL" in line and "hunter2" not in line


def test_a_model_that_cannot_be_loaded_ends_start_up_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "models"
    broken.mkdir()
    for name in ("all-MiniLM-L6-v2.onnx", "tokenizer.json"):
        (broken / name).write_bytes(b"not a model")
    lines = serve_fails(tmp_path, env={"FRUGAL_MODEL_DIR": str(broken)})
    # The model is loaded during start-up proper: the log lines before it are JSON.
    assert lines[-1].startswith("frugal: ") and "frugal model export" in lines[-1]
    assert all(line.startswith("{") for line in lines[:-1]), lines


def test_a_model_choice_that_names_nothing_is_a_settings_error(tmp_path: Path) -> None:
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_EMBEDDER_MODEL": "no-such-model"}))
    assert "FRUGAL_EMBEDDER_MODEL" in line and "'no-such-model'" in line
    assert "frugal model tune" in line


def test_a_tuned_model_directory_that_is_not_finished_is_named(tmp_path: Path) -> None:
    unfinished = tmp_path / "faq-model"
    unfinished.mkdir()
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_EMBEDDER_MODEL": str(unfinished)}))
    assert str(unfinished) in line and "model.json" in line and "FRUGAL_EMBEDDER_MODEL" in line


def test_a_tuned_model_without_its_graph_says_what_to_do(tmp_path: Path) -> None:
    tuned = tuned_copy(MODEL_DIR, tmp_path / "faq-model")
    (tuned / ONNX_FILENAME).unlink()
    line = one_line(serve_fails(tmp_path, env={"FRUGAL_EMBEDDER_MODEL": str(tuned)}))
    assert model_id(tuned) in line and ONNX_FILENAME in line
    assert f"frugal model tune --out {tuned}" in line
