"""One tuning run from pairs file to model directory: `tune`, what ``frugal model tune`` runs.

In order: read the pairs and hold out the validation clusters (`frugal.tuning.pairs`); train,
resuming from the checkpoint in ``<out>/.tuning`` when there is one (`frugal.tuning.trainer`);
then, unless the run was interrupted, export the tuned graph in the base export's format and
its int8 variant, measure both and the base model on the held-out pairs through ONNX Runtime
(`frugal.tuning.calibration`, `frugal.tuning.quantized`), and write ``model.json`` last
(`frugal.tuning.manifest`). The previous ``model.json`` is removed before any model file is
replaced, so a directory never shows a manifest that does not describe its files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from frugal.cache.embedder import OnnxEmbedder
from frugal.cache.export import ONNX_FILENAME, TOKENIZER_FILENAME, export_encoder, export_onnx
from frugal.tuning import manifest
from frugal.tuning.base import base_model, base_tokenizer_path
from frugal.tuning.calibration import Curve, measure
from frugal.tuning.pairs import DEFAULT_VALIDATION_SHARE, cluster_split, read_pairs
from frugal.tuning.quantized import (
    INT8_FILENAME,
    SPEED_TEXTS,
    quantize_int8,
    texts_per_second,
)
from frugal.tuning.trainer import Hyperparameters, Trained, train

WORK_DIRNAME = ".tuning"
CHECKPOINT_FILENAME = "checkpoint.pt"


@dataclass(frozen=True)
class TuneRequest:
    """What to tune on and where to write. ``minutes``: the training budget of all runs into
    ``out_dir`` together (``None``: none); ``threads``: torch's and ONNX Runtime's threads
    (``None``: their defaults); ``command`` is recorded in the manifest. For tests:
    ``stop_after_steps`` stops as an interruption would, after that many steps, and
    ``speed_texts`` is how many texts time the two variants."""

    pairs: Path
    out_dir: Path
    params: Hyperparameters
    validation_share: float = DEFAULT_VALIDATION_SHARE
    minutes: float | None = None
    threads: int | None = None
    stop_after_steps: int | None = None
    speed_texts: int = SPEED_TEXTS
    command: str = ""
    show_progress: bool = True


@dataclass(frozen=True)
class TuneResult:
    """``manifest`` is ``None`` when training was interrupted (run again to resume)."""

    trained: Trained
    manifest: dict[str, Any] | None


def tune(request: TuneRequest, *, say: Callable[[str], None] = print) -> TuneResult:
    """Run ``request``; ``say`` receives a line per stage.

    Raises ``OSError`` or ``ValueError`` for unreadable or unsuitable pairs (no training or no
    validation pair), and ``ValueError`` when ``out_dir`` holds another run's checkpoint.
    """
    data = read_pairs(request.pairs)
    split = cluster_split(data.pairs, share=request.validation_share, seed=request.params.seed)
    if not split.validation or not split.training:
        raise ValueError(
            f"{request.pairs}: {len(split.training)} training and {len(split.validation)} "
            f"validation pairs at --validation-share {request.validation_share}; both sides "
            f"need pairs"
        )
    say(
        f"{len(data.pairs)} pairs: {len(split.training)} to train on, "
        f"{len(split.validation)} held out (question clusters)"
    )
    work = request.out_dir / WORK_DIRNAME
    checkpoint_path = work / CHECKPOINT_FILENAME
    if checkpoint_path.exists():
        say(f"resuming from {checkpoint_path}")
    run = {
        "data_sha256": data.sha256,
        "validation_share": request.validation_share,
        **asdict(request.params),
    }
    trained = train(
        split.training,
        request.params,
        run=run,
        checkpoint_path=checkpoint_path,
        minutes=request.minutes,
        threads=request.threads,
        stop_after_steps=request.stop_after_steps,
        show_progress=request.show_progress,
    )
    if trained.stopped_by == "interrupted":
        say(
            f"stopped at step {trained.steps} of {trained.planned_steps}; run the same "
            f"command again to resume"
        )
        return TuneResult(trained=trained, manifest=None)
    say(
        f"trained {trained.steps} of {trained.planned_steps} steps ({trained.pairs_seen} pairs, "
        f"{trained.seconds / 60:.1f} min, stopped by {trained.stopped_by}); exporting"
    )
    (request.out_dir / manifest.FILENAME).unlink(missing_ok=True)
    torch_version = _write_graphs(trained, request.out_dir)
    say("measuring the base model and the tuned one on the held-out pairs")
    base_dir = export_onnx(work / "base").parent
    embedders = {
        "base": OnnxEmbedder(base_dir, threads=request.threads),
        "fp32": OnnxEmbedder(request.out_dir, threads=request.threads),
        "int8": OnnxEmbedder(request.out_dir, threads=request.threads, graph=INT8_FILENAME),
    }
    curves: dict[str, Curve] = {
        name: measure(embedder, split.validation) for name, embedder in embedders.items()
    }
    texts = list(dict.fromkeys(text for pair in split.validation for text in (pair.a, pair.b)))
    speeds = texts_per_second(
        {name: embedders[name] for name in ("fp32", "int8")}, texts, count=request.speed_texts
    )
    written = manifest.build(
        out_dir=request.out_dir,
        base=base_model(),
        data=data,
        split=split,
        validation_share=request.validation_share,
        command=request.command,
        params=request.params,
        minutes=request.minutes,
        trained=trained,
        versions={"torch": torch_version, "transformers": _transformers_version()},
        curves=curves,
        speeds=speeds,
        speed_texts=request.speed_texts,
    )
    say(f"wrote {manifest.write(request.out_dir, written)}")
    return TuneResult(trained=trained, manifest=written)


def _write_graphs(trained: Trained, out_dir: Path) -> str:
    """Export the fp32 graph, its int8 variant and the tokenizer into ``out_dir`` (staged,
    then renamed into place); return torch's version."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        torch_version = export_encoder(trained.encoder, staging / ONNX_FILENAME)
        quantize_int8(staging / ONNX_FILENAME, staging / INT8_FILENAME)
        shutil.copyfile(base_tokenizer_path(), staging / TOKENIZER_FILENAME)
        for name in (TOKENIZER_FILENAME, ONNX_FILENAME, INT8_FILENAME):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return torch_version


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)
