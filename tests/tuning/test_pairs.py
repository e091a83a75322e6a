"""The held-out split: whole question clusters, never a question on both sides, the same
every time for a seed."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from frugal.analysis.thresholds import Pair
from frugal.cache.scope import normalise
from frugal.tuning.pairs import cluster_split

# Few distinct questions, so pairs share them and clusters chain through several pairs.
QUESTIONS = st.sampled_from(
    ["How old is he?", "How  old is he?", "how old is he?", "What is X?", "What is Y?",
     "Why?", "Why ?", "Who is Z?", "Where is it?", "\u2160 and II", "I and II"]
)  # fmt: skip
PAIRS = st.lists(st.builds(Pair, QUESTIONS, QUESTIONS, st.booleans()), max_size=40)


@given(PAIRS, st.floats(0.05, 0.95), st.integers(0, 3))
def test_no_question_is_on_both_sides(pairs: list[Pair], share: float, seed: int) -> None:
    split = cluster_split(pairs, share=share, seed=seed)

    def questions(side: list[Pair]) -> set[str]:
        return {normalise(text) for pair in side for text in (pair.a, pair.b)}

    assert not questions(split.training) & questions(split.validation)
    assert Counter(split.training + split.validation) == Counter(pairs)  # each pair once


def test_a_chain_of_pairs_is_one_cluster() -> None:
    # "b" joins the first two pairs, "c" the last two; the spacing of "a " is normalised away.
    chain = [Pair("a", "b", True), Pair("b", "c", False), Pair("c", "a ", True)]
    alone = [Pair(f"q{i}", f"r{i}", False) for i in range(200)]
    for seed in range(20):
        split = cluster_split(chain + alone, share=0.5, seed=seed)
        held = [pair for pair in split.validation if pair in chain]
        assert len(held) in (0, 3)


def test_the_split_is_fixed_by_the_seed_and_near_the_share() -> None:
    pairs = [Pair(f"question {i}", f"other {i}", i % 2 == 0) for i in range(2000)]
    first = cluster_split(pairs, share=0.1, seed=7)
    assert cluster_split(pairs, share=0.1, seed=7) == first
    assert cluster_split(pairs, share=0.1, seed=8) != first
    assert 150 < len(first.validation) < 250


def test_a_share_outside_zero_to_one_is_refused() -> None:
    for share in (0.0, 1.0, -0.1):
        try:
            cluster_split([Pair("a", "b", True)], share=share, seed=0)
        except ValueError as exc:
            assert "validation share" in str(exc)
        else:
            raise AssertionError(f"share {share} was accepted")
