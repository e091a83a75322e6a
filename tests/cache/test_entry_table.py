"""`EntryTable` and `Codes`: entries held as columns come back whole, rows are reused, and the
values that rows share go when no row uses them."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from frugal.cache.codes import Codes
from frugal.cache.entry_table import (
    EntryTable,
    Rows,
    compact_hex,
    compact_hex_many,
    labels_text,
    pack_answer,
)
from frugal.cache.store import Entry
from tests.cache.entries import make, unit


def fields(entry: Entry) -> dict[str, object]:
    """Every field but the vector (which the table does not hold)."""
    return {**entry.__dict__, "vector": None}


@pytest.mark.parametrize(
    ("text", "compact"),
    [
        ("ab" * 16, bytes.fromhex("ab" * 16)),  # a uuid4 hex: its 16 bytes
        ("AB" * 16, "AB" * 16),  # upper case would come back lower: kept as it is
        ("ab cd" * 8, "ab cd" * 8),  # fromhex skips spaces: kept as it is
        ("id-1", "id-1"),
        ("abcd", "abcd"),  # short ids stay text
    ],
)
def test_only_lowercase_hex_is_held_as_bytes(text: str, compact: str | bytes) -> None:
    assert compact_hex(text) == compact


def test_codes_are_counted_and_reused() -> None:
    codes = Codes()
    a = codes.take("scope-a")
    assert codes.take("scope-a") == a and codes.value(a) == "scope-a"
    b = codes.take_many(["scope-b", "scope-a", "scope-b"])
    assert b[1] == a and b[0] == b[2] != a
    for _ in range(3):
        codes.release(a)
    assert codes.find("scope-a") is None and len(codes) == 1
    assert codes.take("scope-c") == a  # the freed code, given again


def test_an_entry_comes_back_whole_and_its_row_is_reused(rng: np.random.Generator) -> None:
    table = EntryTable()
    first = make("What is a prime?", unit(rng), entry_id=uuid.uuid4().hex)
    second = make("How far is the Moon?", unit(rng), partition="partition-2")
    one = table.add(first, vgen=1, used_seq=1, put_seq=1)
    two = table.add(second, vgen=2, used_seq=2, put_seq=2)
    got = table.entry(one, first.vector)
    assert fields(got) == fields(first) and got.vector is first.vector
    assert got.labels is not first.labels  # a copy of its own
    assert table.find(first.id) == one and table.find_prompt(first.scope, first.prompt_hash) == one
    assert table.find_prompt("another scope", first.prompt_hash) is None
    table.remove(one)
    assert (
        table.find(first.id) is None and table.find_prompt(first.scope, first.prompt_hash) is None
    )
    assert table.labels.find(labels_text(first.labels)) is None  # no row uses them now
    third = make("Who wrote Emma?", unit(rng))
    assert table.add(third, vgen=3, used_seq=3, put_seq=3) == one  # the row, reused
    assert fields(table.entry(two, None)) == fields(second)
    assert table.live_rows().tolist() == [one, two] and len(table) == 2


def test_rows_read_at_a_restart_are_found_like_added_ones(rng: np.random.Generator) -> None:
    entries = [make(f"question {i}", unit(rng), now=1000.0 + i) for i in range(5)]
    table = EntryTable()
    table.extend(
        Rows(
            ids=[e.id for e in entries], partitions=[e.partition for e in entries],
            scopes=[e.scope for e in entries], prompts=[e.prompt for e in entries],
            prompt_hashes=[e.prompt_hash for e in entries],
            answers=[pack_answer(e.response) for e in entries],
            labels=[labels_text(e.labels) for e in entries], models=[e.model for e in entries],
            created_at=np.array([e.created_at for e in entries]),
            expires_at=np.array([e.expires_at for e in entries]),
            last_used_at=np.full(5, np.nan), hits=np.zeros(5, dtype=np.int64),
            used_seq=np.arange(5, 0, -1), vgen=np.arange(5),
        )
    )  # fmt: skip
    assert table.number_puts() == 5
    for entry in entries:
        row = table.find(entry.id)
        assert row is not None and table.find_prompt(entry.scope, entry.prompt_hash) == row
        assert fields(table.entry(row, None)) == fields(entry)
    assert table.size(0, 768) == table.size(0, 0) + 768 > 0


@pytest.mark.parametrize(
    "texts",
    [
        [],
        [uuid.uuid4().hex for _ in range(5)],
        ["0" * 18, "0" * 16, "0" * 20],  # hex of different lengths: each on its own
        ["ab" * 8, "AB" * 8, "id-1", "é" * 16],
    ],
)
def test_many_texts_compact_as_each_alone(texts: list[str]) -> None:
    assert compact_hex_many(texts) == [compact_hex(text) for text in texts]


def test_an_entry_that_cannot_be_held_takes_no_row(rng: np.random.Generator) -> None:
    table = EntryTable()
    bad = make("not JSON", unit(rng))
    bad = Entry(**{**bad.__dict__, "response": {"answer": object()}})
    with pytest.raises(TypeError):
        table.add(bad, vgen=1, used_seq=1, put_seq=1)
    assert len(table) == 0 and len(table.scopes) == 0
    good = make("fine", unit(rng))
    assert table.add(good, vgen=2, used_seq=2, put_seq=2) == 0  # the first row, still free
