"""The embedding model's commands: `model export` (the packaged weights to ONNX, at install)
and `model tune` (fine-tune them on labelled pairs into a model directory)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from frugal.cli._common import ConfigOption, fail, settings
from frugal.tuning.pairs import DEFAULT_SEED, DEFAULT_VALIDATION_SHARE

model_app = typer.Typer(no_args_is_help=True, help="The embedding model.")

# An interrupted tuning run (Ctrl-C, or the hidden --stop-after-steps N the tests use) exits
# with the shell's code for SIGINT, its checkpoint saved.
INTERRUPTED_EXIT_CODE = 130


@model_app.command("export")
def model_export(
    config: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write to (default: the model dir).")
    ] = None,
) -> None:
    """Export the packaged all-MiniLM-L6-v2 weights to ONNX (needs torch; run once at install)."""
    from frugal.cache.export import export_onnx

    target = out if out is not None else settings(config).models_path
    typer.echo(f"exported {export_onnx(target)}")


@model_app.command("tune")
def model_tune(
    pairs: Annotated[
        Path,
        typer.Option(help='Labelled pairs: JSONL of {"a", "b", "label"}, plain or .gz.'),
    ],
    minutes: Annotated[
        float | None,
        typer.Option(min=0.0, help="Training time budget, resumed runs included (default: none)."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training pairs.")] = 1,
    out: Annotated[
        Path, typer.Option(help="The model directory to write (and to resume in).")
    ] = Path("tuned-model"),
    seed: Annotated[
        int, typer.Option(help="Seed of the split, the data order and dropout.")
    ] = DEFAULT_SEED,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per step.")] = 32,
    max_tokens: Annotated[
        int, typer.Option(min=4, max=256, help="Tokens kept per text while training.")
    ] = 48,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 3e-5,
    validation_share: Annotated[
        float, typer.Option(help="Share of question clusters held out for validation.")
    ] = DEFAULT_VALIDATION_SHARE,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: one per core).")
    ] = None,
    balance: Annotated[
        bool,
        typer.Option(
            help="Weigh the two labels equally, however many pairs each has (for labels "
            "from operation, mostly agreeing pairs)."
        ),
    ] = False,
    stop_after_steps: Annotated[int | None, typer.Option(min=0, hidden=True)] = None,
    speed_texts: Annotated[int, typer.Option(min=1, hidden=True)] = 1000,
) -> None:
    """Fine-tune the embedder on labelled pairs (needs torch), validate it on question
    clusters it never saw, and write a model directory with its manifest (model.json).
    Run the same command again to resume an interrupted run."""
    try:
        from frugal.tuning.run import TuneRequest, tune
        from frugal.tuning.trainer import Hyperparameters
    except ImportError as exc:
        fail(f"tuning needs pip install 'frugal[export]' ({exc})")
    request = TuneRequest(
        pairs=pairs,
        out_dir=out,
        params=Hyperparameters(
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            max_tokens=max_tokens,
            lr=lr,
            balance=balance,
        ),
        validation_share=validation_share,
        minutes=minutes,
        threads=threads,
        stop_after_steps=stop_after_steps,
        speed_texts=speed_texts,
        command=shlex.join(["frugal", *sys.argv[1:]]),
    )
    try:
        result = tune(request, say=lambda line: typer.echo(line, err=True))
    except (OSError, ValueError) as exc:
        fail(exc)
    if result.manifest is None:
        raise typer.Exit(INTERRUPTED_EXIT_CODE)
    typer.echo(_summary(result.manifest))


def _summary(manifest: dict[str, Any]) -> str:
    """Precision at the recall target, base against tuned, and the recommended variant."""
    calibration = manifest["calibration"]
    recommended = manifest["recommended"]

    def point(curve: dict[str, Any]) -> str:
        at = curve["at_recall"]
        if at is None:
            return "n/a"
        return f"{at['precision']:.3f} (threshold {at['threshold']:.3f})"

    tuned = calibration["tuned"]
    speeds = {name: variant["texts_per_s"] for name, variant in manifest["variants"].items()}
    return "\n".join(
        [
            f"precision at recall {calibration['recall_target']:.2f} on "
            f"{calibration['pairs']} held-out pairs:",
            f"  base  {point(calibration['base'])}",
            f"  fp32  {point(tuned['fp32'])}  {speeds['fp32']:.0f} texts/s",
            f"  int8  {point(tuned['int8'])}  {speeds['int8']:.0f} texts/s",
            f"recommended: {recommended}"
            f"{'' if calibration['better_than_base'] else ' (not better than the base model)'}",
        ]
    )
