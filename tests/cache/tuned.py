"""A tuned-model directory made from the exported base model: the same graph and tokenizer
(linked, not copied) under a ``model.json`` of `frugal.tuning.manifest`'s format, so a model
with its own id gives the base model's vectors. Same vectors, another id: what a test needs to
prove that entries are kept apart by model, not by distance."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from frugal.cache.export import ONNX_FILENAME, TOKENIZER_FILENAME

AT_RECALL = {"target": 0.4, "threshold": 0.9, "precision": 0.8, "recall": 0.41, "hit_rate": 0.2}


@cache
def describe(path: Path) -> tuple[int, str]:
    return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()


def tuned_copy(base_dir: Path, out: Path, *, name: str | None = None) -> Path:
    """Write the model directory ``out`` (named ``name`` in its manifest, default: its own
    name) over the base model exported in ``base_dir``; return ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for filename in (ONNX_FILENAME, TOKENIZER_FILENAME):
        (out / filename).symlink_to((base_dir / filename).resolve())
        size, digest = describe((base_dir / filename).resolve())
        files[filename] = {"bytes": size, "sha256": digest}
    tuned_point = {**AT_RECALL, "precision": 0.9}
    manifest = {
        "format": 1,
        "name": name or out.name,
        "recommended": "fp32",
        "variants": {"fp32": {"file": ONNX_FILENAME, "texts_per_s": 100.0}},
        "calibration": {
            "recall_target": 0.4,
            "base": {"at_recall": AT_RECALL, "rows": []},
            "tuned": {"fp32": {"at_recall": tuned_point, "rows": []}},
            "better_than_base": True,
        },
        "files": files,
    }
    (out / "model.json").write_text(json.dumps(manifest, indent=2))
    return out


def model_id(directory: Path) -> str:
    """The id a tuned model directory's manifest gives it."""
    manifest = json.loads((directory / "model.json").read_text())
    graph = manifest["variants"][manifest["recommended"]]["file"]
    return f"{manifest['name']}@{manifest['files'][graph]['sha256'][:12]}"
