"""Models side by side: the ``--models`` list, and the warning that a tuned model would be
measured on pairs it trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frugal.analysis.models import parse_models, trained_on_warning
from frugal.cache.models import ModelSpec

DATA = "7fd2266c"  # the sha256 of the pairs file, shortened: only equality matters


def tuned(**data: Any) -> ModelSpec:
    manifest = {"seed": 0, "data": {"sha256": DATA, "validation_share": 0.1, **data}}
    return ModelSpec(
        choice="quora", id="quora@0123", origin="shipped", directory=Path("q"), manifest=manifest
    )


def test_a_list_keeps_its_order_and_drops_blanks() -> None:
    assert parse_models(" base , quora,") == ["base", "quora"]


@pytest.mark.parametrize("text", ["", " , ", "base,quora,base"])
def test_an_empty_list_or_a_model_named_twice_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--models"):
        parse_models(text)


def test_a_tuned_model_on_its_own_pairs_file_is_flagged_unless_held_out() -> None:
    every_pair = trained_on_warning(tuned(), data_sha256=DATA, held_out=None)
    assert (
        every_pair is not None and "--tuning-holdout --seed 0 --validation-share 0.1" in every_pair
    )
    other_split = trained_on_warning(tuned(), data_sha256=DATA, held_out=(1, 0.1))
    assert other_split is not None and "give --seed 0 --validation-share 0.1" in other_split
    assert trained_on_warning(tuned(), data_sha256=DATA, held_out=(0, 0.1)) is None


def test_other_data_and_the_base_model_are_not_flagged() -> None:
    assert trained_on_warning(tuned(), data_sha256="another", held_out=None) is None
    base = ModelSpec(choice="base", id="all-MiniLM-L6-v2", origin="exported", directory=Path("b"))
    assert trained_on_warning(base, data_sha256=DATA, held_out=None) is None
