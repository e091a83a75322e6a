"""Measure the base model's calibration curve and write it where the package ships it.

    python -m frugal.calibration.base --pairs data/qqp/pairs.jsonl.gz \\
        --out src/frugal/models/base.json

The pairs are split by question cluster exactly as ``frugal model tune`` holds out its
validation pairs (`frugal.tuning.pairs.cluster_split`, its default share and seed), and the
curve is measured on the held-out side only, by the function a tuning run measures its own
with (`frugal.tuning.calibration.measure`, through ONNX Runtime as served): the base model's
figures and a tuned model's are taken on the same questions, the same way. The exported base
model in the model dir (``FRUGAL_MODEL_DIR``, as ``frugal model export`` wrote it) embeds them.

The file has the shape of a manifest's ``calibration`` (`frugal.tuning.manifest`), with the
curve under ``base``, beside the command, the data's SHA-256 and the split.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from frugal.cache.embedder import OnnxEmbedder
from frugal.config import load_settings
from frugal.tuning.calibration import RECALL_TARGET, labels, measure
from frugal.tuning.pairs import DEFAULT_SEED, DEFAULT_VALIDATION_SHARE, cluster_split, read_pairs

MODEL_ID = "all-MiniLM-L6-v2"
FORMAT = 1
# frugal model tune's defaults (--validation-share, --seed), so both hold out the same pairs.
PROGRAM = "python -m frugal.calibration.base"


def calibrate(
    pairs_path: Path, *, share: float, seed: int, model_dir: Path, command: str
) -> dict[str, Any]:
    """The calibration document of the base model on the held-out pairs of ``pairs_path``;
    ``command`` is how it was asked for, recorded in it."""
    data = read_pairs(pairs_path)
    held_out = cluster_split(data.pairs, share=share, seed=seed).validation
    curve = measure(OnnxEmbedder(model_dir), held_out)
    return {
        "format": FORMAT,
        "model": MODEL_ID,
        "command": command,
        "data": {
            "file": pairs_path.as_posix(),
            "sha256": data.sha256,
            "rows": len(data.pairs),
            "validation_pairs": len(held_out),
            "validation_share": share,
            "seed": seed,
            "split": "question clusters: the validation side of frugal model tune's split",
        },
        "calibration": {
            "pairs": len(held_out),
            "duplicates": int(labels(held_out).sum()),
            "recall_target": RECALL_TARGET,
            "base": {
                "at_recall": None if curve.at_recall is None else asdict(curve.at_recall),
                "rows": [asdict(row) for row in curve.rows],
            },
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    parser.add_argument("--pairs", type=Path, required=True, help="JSONL of {a, b, label}")
    parser.add_argument("--share", type=float, default=DEFAULT_VALIDATION_SHARE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="the exported base model (FRUGAL_MODEL_DIR)"
    )
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(given)
    document = calibrate(
        args.pairs,
        share=args.share,
        seed=args.seed,
        model_dir=args.model_dir or load_settings().models_path,
        command=f"{PROGRAM} {shlex.join(given)}",
    )
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
