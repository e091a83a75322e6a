"""Which embedding model the cache runs (``FRUGAL_EMBEDDER_MODEL``), and the id its entries carry.

A choice names one of:

- ``base``: the packaged all-MiniLM-L6-v2 as ``frugal model export`` wrote it into the model
  dir (``FRUGAL_MODEL_DIR``); its id is `BASE_MODEL_ID`, whatever torch exported it;
- a model shipped with frugal: the name of a directory ``frugal/models/<name>/`` holding a
  ``model.json``;
- a directory written by ``frugal model tune``, by its path (``./faq-model``,
  ``/srv/models/faq``: a name that is not shipped is taken as a path).

A tuned model, shipped or not, serves the graph its manifest recommends
(``variants[recommended]``, see `frugal.tuning.manifest`), and its id is
``<name>@<the first 12 hex digits of that graph's sha256>``, ``name`` being the manifest's. The
id names the vectors: a directory moved or renamed keeps it, a model tuned again gets another.

`resolve_model` reads the manifest only: it names the files, the id and the manifest, without
hashing or loading anything, and raises `SettingsError` for a choice that names nothing,
`ConfigurationError` for a directory that is not a finished tuned model. `ModelSpec.verify`
checks the served files against the manifest before they are loaded, so that entries are never
stamped with the id of other weights.

    spec = resolve_model("base", model_dir=Path("~/.cache/frugal/models").expanduser())
    spec.id  # "all-MiniLM-L6-v2"
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from frugal.cache.export import EXPORT_COMMAND, ONNX_FILENAME, TOKENIZER_FILENAME
from frugal.cache.store import BASE_MODEL_ID
from frugal.errors import ConfigurationError, EmbedderUnavailable, SettingsError

BASE = "base"
MANIFEST_FILENAME = "model.json"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"
SETTING = "FRUGAL_EMBEDDER_MODEL"
_MANIFEST_FORMAT = 1
_ID_HEX = 12
_TUNE_COMMAND = "frugal model tune"

Origin = Literal["exported", "shipped", "directory"]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A resolved choice: ``id`` (stamped on every entry the model embeds), where the model
    comes from (``origin``: the ``exported`` base model, a ``shipped`` one, or a tuned
    ``directory``), the ``directory`` and ``graph`` (the ONNX file in it) to load, and for a
    tuned model the ``variant`` served (``fp32`` or ``int8``) and its ``manifest``
    (``model.json``, as read: calibration curves included)."""

    choice: str
    id: str
    origin: Origin
    directory: Path
    graph: str = ONNX_FILENAME
    variant: str | None = None
    manifest: Mapping[str, Any] | None = None

    @property
    def files(self) -> tuple[Path, Path]:
        """The graph and the tokenizer."""
        return self.directory / self.graph, self.directory / TOKENIZER_FILENAME

    def missing(self) -> list[Path]:
        """The files of the model that are not there."""
        return [path for path in self.files if not path.is_file()]

    def remedy(self) -> str:
        """What to do when the model's files are missing or damaged."""
        if self.origin == "exported":
            return f"run `{EXPORT_COMMAND}` (needs pip install 'frugal[export]')"
        if self.origin == "shipped":
            return "reinstall frugal"
        return f"run `{_TUNE_COMMAND} --out {self.directory}` again"

    def verify(self) -> None:
        """Check a tuned model's graph and tokenizer against the sizes and sha256 its manifest
        records (hashing them: about 0.3 s for 90 MB); the base model has nothing to check
        against. Raises `EmbedderUnavailable` naming the file that differs."""
        if self.manifest is None:
            return
        for path in self.files:
            expected = self.manifest["files"].get(path.name)
            if not path.is_file() or expected is None or _describe(path) != expected:
                raise EmbedderUnavailable(
                    f"{path} is missing or differs from {self.directory / MANIFEST_FILENAME} "
                    f"({SETTING}={self.choice}): {self.remedy()}"
                )


def resolve_model(choice: str, *, model_dir: Path, shipped_dir: Path = SHIPPED_DIR) -> ModelSpec:
    """The model ``choice`` names (see the module's docstring); ``model_dir`` is where the base
    model is exported, ``shipped_dir`` where shipped models live.

    Raises `SettingsError` when ``choice`` names no model, `ConfigurationError` when it names
    a directory without a readable ``model.json``.
    Example: ``resolve_model("./faq", model_dir=d).id == "faq@3f9c2e7b1d5a"``.
    """
    if choice == BASE:
        return ModelSpec(choice=choice, id=BASE_MODEL_ID, origin="exported", directory=model_dir)
    if "/" not in choice and (shipped_dir / choice / MANIFEST_FILENAME).is_file():
        return _tuned(choice, shipped_dir / choice, origin="shipped")
    directory = Path(choice).expanduser()
    if not directory.is_dir():
        known = ", ".join([BASE, *shipped_models(shipped_dir)])
        raise SettingsError(
            f"invalid setting {SETTING} = {choice!r}: no such model ({known}) and no such "
            f"directory; give one of those names, or the path of a directory written by "
            f"`{_TUNE_COMMAND}`"
        )
    return _tuned(choice, directory, origin="directory")


def shipped_models(shipped_dir: Path = SHIPPED_DIR) -> list[str]:
    """The names of the models shipped in ``shipped_dir``, sorted."""
    if not shipped_dir.is_dir():
        return []
    return sorted(
        path.name for path in shipped_dir.iterdir() if (path / MANIFEST_FILENAME).is_file()
    )


def _tuned(choice: str, directory: Path, *, origin: Origin) -> ModelSpec:
    path = directory / MANIFEST_FILENAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, not {_MANIFEST_FORMAT}")
        variant = str(manifest["recommended"])
        graph = str(manifest["variants"][variant]["file"])
        digest = str(manifest["files"][graph]["sha256"])
        name = str(manifest["name"])
    except FileNotFoundError:
        raise ConfigurationError(
            f"{directory} ({SETTING}) is not a finished model: it has no {MANIFEST_FILENAME} "
            f"(`{_TUNE_COMMAND} --out {directory}` writes one, last)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(
            f"{path} ({SETTING}) cannot be read as a tuned model's manifest: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return ModelSpec(
        choice=choice,
        id=f"{name}@{digest[:_ID_HEX]}",
        origin=origin,
        directory=directory,
        graph=graph,
        variant=variant,
        manifest=manifest,
    )


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
