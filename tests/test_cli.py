"""The command line's surface: every command and option where users find them, both ways of
starting it, and defaults that follow the gateway's settings."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

from typer.main import get_command

from frugal.bench.run import configurations
from frugal.cli import app
from frugal.config import Settings

SURFACE = {
    "serve": ["--host", "--port", "--config", "--upstream", "--workers"],
    "shadow-report": ["--admin-key", "--url"],
    "sim": [
        "--host", "--port", "--call-latency-ms", "--item-latency-ms", "--token-latency-ms",
        "--max-concurrency", "--rpm", "--error-rate", "--slow-rate", "--slow-ms", "--drop-rate",
        "--reject-containing", "--require-api-key", "--seed", "--models", "--flag-containing",
        "--batch-delay-s", "--batch-expire-after-s",
    ],
    "demo": ["--workload", "--concurrency", "--call-latency-ms", "--item-latency-ms", "--chart"],
    "fleet": ["--replicas", "--workers", "--port", "--upstream", "--run-dir"],
    "tune": [
        "--pairs", "--out", "--max-wrong-hit-rate", "--tuning-holdout", "--seed",
        "--validation-share", "--through-store", "--models", "--config",
    ],
    "analyze": [
        "--prompts", "--out", "--thresholds", "--shuffle", "--detail-intents", "--models",
        "--config",
    ],
    "bench": [
        "--workload", "--requests", "--clients", "--qps", "--duration", "--zipf", "--seed",
        "--thresholds", "--only", "--model", "--models", "--call-latency-ms",
        "--item-latency-ms", "--token-latency-ms", "--out", "--config",
    ],
    "model export": ["--config", "--out"],
    "model tune": [
        "--pairs", "--minutes", "--epochs", "--out", "--seed", "--batch-size", "--max-tokens",
        "--lr", "--validation-share", "--threads", "--balance", "--stop-after-steps",
        "--speed-texts",
    ],
    "model list": ["--config"],
    "keys add": ["TENANT", "--file"],
    "cache stats": ["--admin-key", "--url"],
    "cache list": ["--admin-key", "--url", "--offset", "--limit", "--tenant"],
    "cache invalidate": [
        "--admin-key", "--url", "--id", "--tenant", "--scope", "--prompt", "--threshold",
    ],
    "cache flush": ["--admin-key", "--url", "--yes"],
    "cache reembed": ["--admin-key", "--url"],
    "cache labels export": ["--admin-key", "--url", "--out"],
}  # fmt: skip
DEFAULT_THRESHOLD = Settings.model_fields["cache_threshold"].default


def commands(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every leaf command by its path (``"cache list"``), in the order help lists them."""
    if not hasattr(command, "commands"):
        return {" ".join(path): command}
    found: dict[str, Any] = {}
    for name, sub in command.commands.items():
        found.update(commands(sub, (*path, name)))
    return found


def test_every_command_keeps_its_options_in_order() -> None:
    surface = {
        path: [p.opts[0] if p.param_type_name == "option" else p.name.upper() for p in c.params]
        for path, c in commands(get_command(app)).items()
    }
    assert surface == SURFACE
    assert list(surface) == list(SURFACE)


def test_the_script_and_python_m_run_the_same_app() -> None:
    (script,) = entry_points(group="console_scripts", name="frugal")
    assert script.load() is app
    result = subprocess.run(
        [sys.executable, "-m", "frugal", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in ("serve", "shadow-report", "bench", "cache"))


def test_thresholds_not_given_follow_the_setting() -> None:
    invalidate = commands(get_command(app))["cache invalidate"]
    (threshold,) = [p for p in invalidate.params if p.name == "threshold"]
    assert threshold.default == DEFAULT_THRESHOLD
    setups = {setup.name: setup for setup in configurations([0.8])}
    for name in ("semantic", "semantic+batching"):
        env = setups[name].gateway_env
        assert setups[name].threshold == DEFAULT_THRESHOLD
        assert env is not None and env["FRUGAL_CACHE_THRESHOLD"] == str(DEFAULT_THRESHOLD)
