"""Several embedding models side by side: the ``--models`` of `frugal tune`, `frugal analyze`
and `frugal bench`.

A list names models as ``FRUGAL_EMBEDDER_MODEL`` does (`frugal.cache.models.resolve_model`):
``base``, the name of a shipped model, or the directory of a tuned one. Each model is labelled
by its choice as given, so a table's ``model`` column reads as the command line did.

A tuned model knows what it trained on (its ``model.json`` names the pairs file by sha256, the
seed and the validation share): `trained_on_warning` says when a table of pairs would measure
it on pairs it trained on, which flatters it.

    models = load_models(parse_models("base,./faq-model"), backend="onnx", model_dir=d)
    [model.label for model in models]  # ["base", "./faq-model"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frugal.cache.embedder import Embedder, load_embedder
from frugal.cache.models import ModelSpec, resolve_model


@dataclass(frozen=True)
class Model:
    """A model of the list: its ``label`` (the choice as given), what it resolved to, and its
    loaded embedder."""

    label: str
    spec: ModelSpec
    embedder: Embedder


def parse_models(text: str) -> list[str]:
    """The choices of a comma-separated list, in order, blanks around names dropped.

    Raises ``ValueError`` for an empty list or a choice named twice (the same model twice
    would only double the work).
    Example: ``parse_models("base, quora") == ["base", "quora"]``.
    """
    choices = [choice.strip() for choice in text.split(",") if choice.strip()]
    if not choices:
        raise ValueError(f"--models names no model: {text!r}")
    twice = sorted({choice for choice in choices if choices.count(choice) > 1})
    if twice:
        raise ValueError(f"--models names {', '.join(twice)} more than once")
    return choices


def resolve_models(choices: list[str], *, model_dir: Path) -> list[ModelSpec]:
    """Each choice resolved (`resolve_model`), without loading anything; raises as it does
    (`SettingsError`, `ConfigurationError`)."""
    return [resolve_model(choice, model_dir=model_dir) for choice in choices]


def load_models(choices: list[str], *, backend: str, model_dir: Path) -> list[Model]:
    """Each choice resolved and loaded with ``backend``, in order.

    Raises `SettingsError` or `ConfigurationError` for a choice that names no finished model,
    `EmbedderUnavailable` for one that cannot be loaded (all before any model is used).
    """
    return [
        Model(label=spec.choice, spec=spec, embedder=load_embedder(backend=backend, model=spec))
        for spec in resolve_models(choices, model_dir=model_dir)
    ]


def trained_on_warning(
    spec: ModelSpec, *, data_sha256: str, held_out: tuple[int, float] | None
) -> str | None:
    """Why ``spec``'s figures on a pairs file (``data_sha256``: the sha256 of its bytes as
    stored) would be flattered, or ``None``: a tuned model whose manifest names that file, when
    the pairs measured are not the clusters it held out itself. ``held_out`` is the
    ``(seed, validation share)`` of the held-out pairs measured (``None``: every pair)."""
    manifest = spec.manifest
    if manifest is None or manifest.get("data", {}).get("sha256") != data_sha256:
        return None
    own = (manifest.get("seed"), manifest["data"].get("validation_share"))
    if held_out is None:
        return (
            f"{spec.choice} was tuned on this file: most of these pairs are ones it trained on; "
            f"--tuning-holdout --seed {own[0]} --validation-share {own[1]} measures it on the "
            f"ones it held out"
        )
    if held_out != own:
        return (
            f"{spec.choice} held out other clusters of this file (seed {own[0]}, share "
            f"{own[1]}): some of these pairs are ones it trained on; give --seed {own[0]} "
            f"--validation-share {own[1]}"
        )
    return None
