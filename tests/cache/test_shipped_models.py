"""The models shipped with frugal are what their manifests say: the served graph and tokenizer
hash to the manifest's sha256, and the manifest says how the model was made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugal.cache.models import MANIFEST_FILENAME, SHIPPED_DIR, resolve_model, shipped_models

SHIPPED = shipped_models()


def test_the_quora_model_is_shipped() -> None:
    assert "quora" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_models_files_match_its_manifest(name: str, tmp_path: Path) -> None:
    spec = resolve_model(name, model_dir=tmp_path)
    assert spec.origin == "shipped" and spec.id.startswith(f"{spec.manifest['name']}@")
    spec.verify()  # raises when a file is missing or its size or sha256 differs


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_manifest_records_its_making(name: str) -> None:
    manifest = json.loads((SHIPPED_DIR / name / MANIFEST_FILENAME).read_text())
    text = json.dumps(manifest)
    assert "frugal model tune" in text  # the command that made it
    assert "sha256" in text and "calibration" in text
