"""The `frugal` command line: one Typer app assembled from its rooms.

- `_run`: what runs something (`serve`, `sim`, `demo`, `fleet`, `keys add`);
- `_model`: the embedding model (`model export`, `model tune`); `_model_list`: `model list`;
- `_admin`: what talks to a running gateway (`cache ...`, `shadow-report`);
- `_offline`: the offline tools (`tune`, `analyze`, `bench`).

``frugal = "frugal.cli:app"`` (the script) and ``python -m frugal`` both run `app`.
"""

from __future__ import annotations

import typer

from frugal.cli._admin import cache_app, shadow_report
from frugal.cli._model import model_app
from frugal.cli._model_list import model_list
from frugal.cli._offline import analyze, bench, tune
from frugal.cli._run import demo, fleet, keys_app, serve, sim

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="frugal, an LLM gateway.",
)
# Commands first, then the groups: the order `frugal --help` lists them in.
app.command()(serve)
app.command("shadow-report")(shadow_report)
app.command()(sim)
app.command()(demo)
app.command()(fleet)
app.command()(tune)
app.command()(analyze)
app.command()(bench)
model_app.command("list")(model_list)
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(cache_app, name="cache")
