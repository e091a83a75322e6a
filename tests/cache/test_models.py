"""Which embedding model a choice names, the id its entries carry, and loading it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is packaged; never reach a hub

from frugal.cache.embedder import OnnxEmbedder, load_embedder  # noqa: E402
from frugal.cache.export import ONNX_FILENAME, TOKENIZER_FILENAME, export_onnx  # noqa: E402
from frugal.cache.models import resolve_model, shipped_models  # noqa: E402
from frugal.cache.store import BASE_MODEL_ID  # noqa: E402
from frugal.config import load_settings  # noqa: E402
from frugal.errors import ConfigurationError, EmbedderUnavailable, SettingsError  # noqa: E402
from tests.cache.tuned import describe, tuned_copy  # noqa: E402

SENTENCES = ["What is the capital of France?", "Who painted the Mona Lisa?", "hi"]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The exported base model (`make test` exports it at install; exported here if not)."""
    return export_onnx(load_settings().models_path).parent


def test_base_is_the_exported_model_whatever_exported_it(tmp_path: Path) -> None:
    spec = resolve_model("base", model_dir=tmp_path, shipped_dir=tmp_path / "none")
    assert (spec.id, spec.origin, spec.directory, spec.manifest) == (
        BASE_MODEL_ID,
        "exported",
        tmp_path,
        None,
    )
    assert spec.files == (tmp_path / ONNX_FILENAME, tmp_path / TOKENIZER_FILENAME)
    assert spec.missing() == list(spec.files)  # resolving does not need the files


def test_a_tuned_directory_is_named_by_its_manifest_and_its_graphs_hash(
    tmp_path: Path, model_dir: Path
) -> None:
    tuned = tuned_copy(model_dir, tmp_path / "faq-model")
    spec = resolve_model(str(tuned), model_dir=model_dir, shipped_dir=tmp_path / "none")
    digest = describe((model_dir / ONNX_FILENAME).resolve())[1]
    assert spec.id == f"faq-model@{digest[:12]}"
    assert (spec.origin, spec.directory, spec.graph, spec.variant) == (
        "directory",
        tuned,
        ONNX_FILENAME,
        "fp32",
    )
    assert spec.manifest is not None and spec.manifest["name"] == "faq-model"
    assert spec.missing() == []
    moved = tuned.rename(tmp_path / "elsewhere")  # the id names the vectors, not the folder
    assert resolve_model(str(moved), model_dir=model_dir).id == spec.id


def test_the_served_graph_is_the_recommended_variant(tmp_path: Path, model_dir: Path) -> None:
    tuned = tuned_copy(model_dir, tmp_path / "faq")
    manifest = json.loads((tuned / "model.json").read_text())
    (tuned / "small.onnx").write_bytes(b"int8 weights")
    manifest["variants"]["int8"] = {"file": "small.onnx"}
    manifest["files"]["small.onnx"] = {"bytes": 12, "sha256": "ab" * 32}
    manifest["recommended"] = "int8"
    (tuned / "model.json").write_text(json.dumps(manifest))
    spec = resolve_model(str(tuned), model_dir=model_dir)
    assert (spec.graph, spec.variant, spec.id) == ("small.onnx", "int8", "faq@" + "ab" * 6)


def test_a_shipped_model_is_chosen_by_its_name(tmp_path: Path, model_dir: Path) -> None:
    shipped = tmp_path / "models"
    tuned_copy(model_dir, shipped / "faq", name="faq")
    (shipped / "base.json").write_text("{}")  # a file beside them is no model
    assert shipped_models(shipped) == ["faq"]
    spec = resolve_model("faq", model_dir=model_dir, shipped_dir=shipped)
    assert (spec.origin, spec.directory) == ("shipped", shipped / "faq")
    assert spec.id.startswith("faq@")


def test_a_choice_that_names_nothing_is_a_settings_error(tmp_path: Path) -> None:
    shipped = tmp_path / "models"
    (shipped / "faq").mkdir(parents=True)
    (shipped / "faq" / "model.json").write_text("{}")
    with pytest.raises(SettingsError, match="FRUGAL_EMBEDDER_MODEL") as caught:
        resolve_model("no-such-model", model_dir=tmp_path, shipped_dir=shipped)
    assert "'no-such-model'" in str(caught.value) and "base, faq" in str(caught.value)


def test_a_directory_that_is_not_a_finished_model_is_named(tmp_path: Path, model_dir: Path) -> None:
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(ConfigurationError, match="no model.json") as caught:
        resolve_model(str(unfinished), model_dir=model_dir)
    assert not isinstance(caught.value, SettingsError) and str(unfinished) in str(caught.value)
    (unfinished / "model.json").write_text('{"format": 1, "name": "x"}')
    with pytest.raises(ConfigurationError, match="cannot be read as a tuned model's manifest"):
        resolve_model(str(unfinished), model_dir=model_dir)
    (unfinished / "model.json").write_text('{"format": 2}')
    with pytest.raises(ConfigurationError, match="format 2"):
        resolve_model(str(unfinished), model_dir=model_dir)


def test_a_tuned_model_loads_with_its_own_graph(tmp_path: Path, model_dir: Path) -> None:
    spec = resolve_model(str(tuned_copy(model_dir, tmp_path / "faq")), model_dir=model_dir)
    tuned = load_embedder(backend="onnx", model=spec)
    base = OnnxEmbedder(model_dir)
    assert np.abs(tuned.embed(SENTENCES) - base.embed(SENTENCES)).max() < 1e-6
    with pytest.raises(EmbedderUnavailable, match="base model"):
        load_embedder(backend="sentence-transformers", model=spec)


def test_a_tuned_model_whose_files_differ_from_its_manifest_is_refused(
    tmp_path: Path, model_dir: Path
) -> None:
    """Its id comes from the manifest: serving other weights under it would mix vectors."""
    tuned = tuned_copy(model_dir, tmp_path / "faq")
    (tuned / TOKENIZER_FILENAME).unlink()
    (tuned / TOKENIZER_FILENAME).write_text("{}")
    spec = resolve_model(str(tuned), model_dir=model_dir)
    with pytest.raises(EmbedderUnavailable, match="differs from") as caught:
        load_embedder(backend="onnx", model=spec)
    assert "frugal model tune --out" in str(caught.value)
