"""What the command modules share: common options, the settings, and how a command fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from frugal.config import Settings, load_settings
from frugal.errors import SettingsError

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on.")]
ConfigOption = Annotated[
    Path | None, typer.Option(help="YAML settings file.", envvar="FRUGAL_CONFIG_FILE")
]


def fail(message: object) -> NoReturn:
    """End the command: ``frugal: MESSAGE`` on stderr, exit code 2 (bad input or set-up)."""
    typer.echo(f"frugal: {message}", err=True)
    raise typer.Exit(2)


def settings(config: Path | None, **overrides: object) -> Settings:
    """The settings, with flags as ``overrides`` (``None``: not given); a bad one ends the
    command with its message."""
    try:
        return load_settings(config_file=config, **overrides)
    except SettingsError as exc:
        fail(exc)
