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

from frugal.cache.export import EXPORT_COMMAND, ONNX_FILENAME, TOKENIZER_FILENAME
from frugal.config import Settings
from frugal.errors import ConfigurationError


def check_startup(settings: Settings) -> None:
    """Check what the gateway needs from its settings: the client keys file, the exported
    model, the data dir (created here if absent) or the Redis URL.

    Raises `ConfigurationError` (a `KeysFileError` for the keys file) with a one-line message
    that names the setting, e.g. ``no embedding model in /srv/models (FRUGAL_MODEL_DIR): run
    `frugal model export` ...``.
    """
    if settings.api_keys_file is not None:
        from frugal.tenants import Keys

        Keys.load(settings.api_keys_file)
    if settings.cache_mode == "off":
        return  # no model and no store are opened
    if settings.embedder_backend == "onnx":
        _check_model(settings.models_path)
    if settings.store == "embedded":
        _check_data_dir(settings.data_dir)
    elif settings.redis_url is not None:  # load_settings insists on it for the Redis store
        _check_redis_url(settings.redis_url.get_secret_value())


def _check_model(model_dir: Path) -> None:
    if all((model_dir / name).is_file() for name in (ONNX_FILENAME, TOKENIZER_FILENAME)):
        return
    raise ConfigurationError(
        f"no embedding model in {model_dir} (FRUGAL_MODEL_DIR): run `{EXPORT_COMMAND}` to "
        f"export it (needs the export extra: pip install 'frugal[export]')"
    )


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
