"""What `frugal serve` checks before it starts serving, so that a set-up it cannot run with
stops it at once with one line naming the problem and its setting, not a traceback.

The checks are cheap (no model is loaded, no server contacted). What only the start-up itself
can find (a model file that does not load, a Redis without the query engine, a port taken) is
reported the same way by `frugal.api.server.serve`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from frugal.cache.export import EXPORT_COMMAND
from frugal.cache.models import SETTING, resolve_model
from frugal.config import Settings
from frugal.errors import ConfigurationError


def check_startup(settings: Settings) -> None:
    """Check what the gateway needs from its settings: the client keys file, the chosen
    embedding model (and an error budget its calibration can meet), the data dir (created here
    if absent) or the Redis URL.

    Raises `ConfigurationError` (a `KeysFileError` for the keys file, a `SettingsError` for a
    model choice that names nothing) with a one-line message that names the setting, e.g.
    ``no embedding model in /srv/models (FRUGAL_MODEL_DIR) for FRUGAL_EMBEDDER_MODEL=base: run
    `frugal model export` ...``.
    """
    if settings.api_keys_file is not None:
        from frugal.tenants import Keys

        Keys.load(settings.api_keys_file)
    if settings.cache_mode == "off":
        return  # no model and no store are opened
    _check_model(settings)
    _check_budget(settings)
    if settings.store == "embedded":
        _check_data_dir(settings.data_dir)
    elif settings.redis_url is not None:  # load_settings insists on it for the Redis store
        _check_redis_url(settings.redis_url.get_secret_value())


def _check_model(settings: Settings) -> None:
    """The chosen model resolves, and the backend has the files it needs to load it."""
    model = resolve_model(settings.embedder_model, model_dir=settings.models_path)
    choice = f"{SETTING}={settings.embedder_model}"
    if settings.embedder_backend == "sentence-transformers":
        if model.manifest is not None:
            raise ConfigurationError(
                f"FRUGAL_EMBEDDER_BACKEND=sentence-transformers runs only the base model, not "
                f"{choice}: use FRUGAL_EMBEDDER_BACKEND=onnx"
            )
        return  # it loads the packaged weights, not the export
    missing = model.missing()
    if not missing:
        return
    if model.origin == "exported":
        raise ConfigurationError(
            f"no embedding model in {model.directory} (FRUGAL_MODEL_DIR) for {choice}: run "
            f"`{EXPORT_COMMAND}` to export it (needs the export extra: pip install "
            f"'frugal[export]')"
        )
    names = ", ".join(path.name for path in missing)
    raise ConfigurationError(
        f"the model {model.id} ({choice}) lacks {names} in {model.directory}: {model.remedy()}"
    )


def _check_budget(settings: Settings) -> None:
    """An error budget (``FRUGAL_CACHE_MAX_WRONG_HIT_RATE``) the chosen model's calibration
    can meet; raises `SettingsError` naming the best it offers."""
    from frugal.calibration import calibration_of, choose_threshold

    model = resolve_model(settings.embedder_model, model_dir=settings.models_path)
    choose_threshold(settings, calibration=lambda: calibration_of(model))


def _check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the data dir {data_dir} (FRUGAL_DATA_DIR): {exc.strerror or exc}"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the data dir {data_dir} (FRUGAL_DATA_DIR) is not writable")


def _check_redis_url(url: str) -> None:
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        reason = str(exc)
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:  # the URL is a secret: its password never reaches a message
            reason = reason.replace(password, "***")
        raise ConfigurationError(f"invalid FRUGAL_REDIS_URL: {reason}") from None
