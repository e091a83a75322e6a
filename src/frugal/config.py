"""frugal's settings: one frozen object, read once at start-up.

Sources, strongest first: command-line flags (passed in as overrides), `FRUGAL_*` environment
variables, then an optional YAML file whose keys are the field names below
(`cache_threshold: 0.85`). A bad value stops start-up with a message naming the setting and
the value (`SettingsError`). Units are in the names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, FilePath, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from frugal.errors import SettingsError
from frugal.observability.prices import ModelPrice

if TYPE_CHECKING:
    from frugal.cache import RedisTarget

ENV_PREFIX = "FRUGAL_"
# The write-up's similarity threshold: the default wherever a threshold is not given.
DEFAULT_THRESHOLD = 0.9


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)  # gateway processes on the one port (the Redis store only)

    upstream_base_url: HttpUrl | None = None
    upstream_api_key: SecretStr | None = None
    upstream_connect_timeout_s: float = Field(5.0, gt=0)
    upstream_timeout_s: float = Field(120.0, gt=0)
    upstream_max_retries: int = Field(2, ge=0, le=10)
    upstream_retry_base_delay_s: float = Field(0.2, ge=0)
    upstream_retry_max_delay_s: float = Field(10.0, ge=0)
    upstream_max_concurrency: int = Field(64, ge=1)

    cache_mode: Literal["on", "off", "shadow"] = "on"  # shadow: answer upstream, record
    cache_threshold: float = Field(DEFAULT_THRESHOLD, ge=-1.0, le=1.0)  # cosine, not distance
    # Largest share of hits that may be wrong: the threshold then comes from the model's
    # calibration (frugal.calibration); a cache_threshold that is set still wins.
    cache_max_wrong_hit_rate: float | None = Field(None, ge=0.0, lt=1.0)
    cache_ttl_s: float = Field(3600.0, gt=0)
    cache_max_entries: int = Field(100_000, ge=1)
    # Embedded store: a bound on what entries count (answer compressed, prompt, id, vector).
    cache_max_bytes: int | None = Field(None, ge=1)
    # Embedded store: how often the HNSW graphs changed since are written beside cache.sqlite3.
    cache_index_checkpoint_s: float = Field(300.0, gt=0)
    cache_store_length_finish: bool = False  # also store answers cut by max_tokens
    cache_store_tool_calls: bool = False
    cache_user_is_label: bool = True  # `user` names the end user and does not change the answer
    store: Literal["embedded", "redis"] = "embedded"
    redis_url: SecretStr | None = None  # redis://[:password@]host:port/db; may hold a password
    redis_prefix: str = Field("frugal:", min_length=1)  # keys; two deployments, two prefixes
    redis_index: str = Field("frugal", min_length=1, pattern=r"^[A-Za-z0-9_:.\-]+$")
    # Redis behind Sentinel: host:port,host:port and the name the Sentinels monitor; the URL,
    # if given, then gives only the password, user, db and scheme (rediss:// for TLS).
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = Field(None, min_length=1)
    redis_read_from_replicas: bool = False  # lookups on a replica (Sentinel); writes: primary
    # TLS (rediss:// URLs, and Sentinel set-ups when set): the CA that signed the servers'
    # certificates, and a client certificate and key where the servers ask for one.
    redis_tls_ca_file: FilePath | None = None
    redis_tls_cert_file: FilePath | None = None
    redis_tls_key_file: FilePath | None = None
    store_timeout_ms: float = Field(100.0, gt=0)  # a lookup, store or hit slower than this: miss
    store_breaker_failures: int = Field(5, ge=1)  # failures in a row that open the breaker
    store_breaker_reset_s: float = Field(5.0, gt=0)  # how long it stays open before a probe
    data_dir: Path = Path(".frugal")
    model_dir: Path | None = None  # the exported embedder; default: default_model_dir()
    embedder_backend: Literal["onnx", "sentence-transformers"] = "onnx"
    # base (the export in model_dir), a shipped model's name, or a `frugal model tune` dir.
    embedder_model: str = Field("base", min_length=1)
    # Texts that arrive during a model call share the next one, up to this many.
    embedder_max_batch: int = Field(32, ge=1)
    admin_key: SecretStr | None = None
    api_keys_file: Path | None = None  # client keys -> tenants; without it the gateway is open

    batch_window_ms: float = Field(50.0, ge=0)  # 0 sends every miss at once, alone
    batch_max_size: int = Field(5, ge=1)  # prompts or inputs per upstream call
    batch_max_queue: int = Field(1000, ge=1)  # waiting items per queue beyond which: 429
    batch_timeout_s: float = Field(30.0, gt=0)  # an item waiting longer is never sent: 504
    coalesce: bool = True  # a miss waits for an equal or near-equal miss already in flight

    # The fleet (replicas on one Redis store, frugal.fleet). This process's name in the fleet
    # view and the metrics' ``replica`` label; default hostname:pid.
    replica_id: str | None = Field(None, min_length=1, max_length=200)
    # With the Redis store, an exact miss another replica is asking upstream waits for its answer.
    fleet_coalescing: bool = True
    fleet_wait_s: float = Field(30.0, gt=0)  # the longest such a wait; then it asks itself
    fleet_lease_ttl_s: float = Field(3.0, gt=0)  # a dead leader's lease lasts this long
    fleet_report_s: float = Field(5.0, gt=0)  # how often a replica reports to the fleet view

    # The Batch API (frugal.deferred): a batch's unique misses go to the provider as one
    # provider batch ("provider") or through the live path ("live").
    batch_api_mode: Literal["provider", "live"] = "provider"
    batch_api_poll_s: float = Field(30.0, gt=0)  # how often a provider batch is polled
    batch_api_live_rps: float = Field(10.0, gt=0)  # live sends per second, per batch

    # Dollars per million tokens by model, added to and replacing the built-in table.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    metrics_tenant_label: bool = True  # off for setups with very many tenants
    metrics_key: SecretStr | None = None  # bearer key for /metrics; without it /metrics is open
    log_prompts: bool = False  # prompt text in the request log lines (opt-in)

    default_model: str = "gpt-4o-mini"
    max_body_bytes: int = Field(1_048_576, ge=1024)  # the JSON routes' bodies
    # A relayed request's body (files, audio, images), streamed, never held: OpenAI's file limit.
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    models_cache_s: float = Field(60.0, ge=0)  # GET /v1/models answers kept; 0: never kept
    client_body_timeout_s: float = Field(30.0, gt=0)  # a body slower to arrive than this: 408
    shutdown_drain_s: float = Field(0.0, ge=0)  # on SIGTERM: not ready, still serving, this long
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")

    @field_validator("upstream_api_key", "admin_key", "metrics_key", "redis_url", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        # An empty key would let an empty bearer token through: treat it as not set.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            return ",".join(f"{host}:{port}" for host, port in parse_host_ports(value))
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @property
    def models_path(self) -> Path:
        """The folder holding the exported embedder: ``model_dir``, else `default_model_dir`
        (never under ``data_dir``: a new data dir needs no new export)."""
        return self.model_dir if self.model_dir is not None else default_model_dir()

    @property
    def upstream_url(self) -> str:
        """The upstream base URL without a trailing slash (``http://host:port/v1``)."""
        if self.upstream_base_url is None:
            raise SettingsError(f"{ENV_PREFIX}UPSTREAM_BASE_URL is required (or --upstream URL)")
        return str(self.upstream_base_url).rstrip("/")


def default_model_dir() -> Path:
    """Where `frugal model export` writes the embedder and the gateway reads it, unless
    ``FRUGAL_MODEL_DIR`` says otherwise: one place per user, whatever the data dir, in the
    user's cache folder (``$XDG_CACHE_HOME/frugal/models``, else ``~/.cache/frugal/models``).
    """
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"  # XDG: absolute only
    return base / "frugal" / "models"


def load_settings(*, config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings; ``overrides`` (flags) beat the environment, which beats the file.

    Overrides whose value is ``None`` mean "flag not given" and are dropped.
    """
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {str(config_file)!r} does not exist")
    given = {key: value for key, value in overrides.items() if value is not None}

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    try:
        settings = _FromFile(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    _check_redis(settings)
    return settings


def redis_target(settings: Settings) -> RedisTarget:
    """Where the ``FRUGAL_REDIS_*`` settings that `load_settings` validated point."""
    from frugal.cache import RedisTarget  # here: the settings load without the cache's imports

    sentinels = settings.redis_sentinels
    return RedisTarget(
        url=settings.redis_url.get_secret_value() if settings.redis_url else None,
        sentinels=tuple(parse_host_ports(sentinels)) if sentinels else (),
        sentinel_master=settings.redis_sentinel_master,
        read_from_replicas=settings.redis_read_from_replicas,
        tls_ca_file=settings.redis_tls_ca_file,
        tls_cert_file=settings.redis_tls_cert_file,
        tls_key_file=settings.redis_tls_key_file,
    )


def parse_host_ports(value: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` (an IPv6 host in brackets: ``[::1]:26379``) as pairs.

    Raises ValueError naming the entry that is not a host and a port in 1..65535.
    """
    pairs = []
    for entry in (part.strip() for part in value.split(",")):
        host, _, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port (e.g. 10.0.0.5:26379)")
        pairs.append((host, int(port)))
    return pairs


def _check_redis(settings: Settings) -> None:
    """The Redis settings that only make sense together."""
    sentinels, master = settings.redis_sentinels, settings.redis_sentinel_master
    if sentinels is not None and master is None:
        raise SettingsError(
            f"{ENV_PREFIX}REDIS_SENTINEL_MASTER is required with {ENV_PREFIX}REDIS_SENTINELS: "
            "the name the Sentinels monitor (sentinel.conf's `sentinel monitor NAME ...`)"
        )
    if master is not None and sentinels is None:
        raise SettingsError(
            f"{ENV_PREFIX}REDIS_SENTINEL_MASTER is set without {ENV_PREFIX}REDIS_SENTINELS"
        )
    if settings.redis_read_from_replicas and sentinels is None:
        raise SettingsError(
            f"{ENV_PREFIX}REDIS_READ_FROM_REPLICAS needs {ENV_PREFIX}REDIS_SENTINELS: "
            "replicas are found through Sentinel"
        )
    if settings.store == "redis" and settings.redis_url is None and sentinels is None:
        raise SettingsError(
            f"{ENV_PREFIX}REDIS_URL (or {ENV_PREFIX}REDIS_SENTINELS) is required when "
            f"{ENV_PREFIX}STORE=redis"
        )
    if settings.redis_tls_key_file is not None and settings.redis_tls_cert_file is None:
        raise SettingsError(
            f"{ENV_PREFIX}REDIS_TLS_KEY_FILE is set without {ENV_PREFIX}REDIS_TLS_CERT_FILE"
        )
    tls_files = [
        name
        for name in ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")
        if getattr(settings, name) is not None
    ]
    url = settings.redis_url.get_secret_value() if settings.redis_url is not None else ""
    if tls_files and sentinels is None and not url.lower().startswith("rediss://"):
        raise SettingsError(
            f"{ENV_PREFIX}{tls_files[0].upper()} is set but {ENV_PREFIX}REDIS_URL is not a "
            "rediss:// URL: TLS is used for rediss:// URLs (and with Sentinel)"
        )


_SECRETS = {"upstream_api_key", "admin_key", "metrics_key", "redis_url"}


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        shown = "(secret)" if name in _SECRETS else repr(error.get("input"))
        lines.append(
            f"invalid setting {name} ({ENV_PREFIX}{name.upper()}) = {shown}: {error['msg']}"
        )
    return "\n".join(lines)
