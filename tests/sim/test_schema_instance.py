"""The schema filler: its values validate against the schemas pydantic and the SDK write."""

from __future__ import annotations

import datetime
import math
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from frugal.sim.schema_instance import SchemaError, instance_of

TEXT = "[sim-small] Answer to: q"


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Step(BaseModel):
    explanation: str
    output: int


class Solution(BaseModel):
    steps: list[Step]
    final_answer: str
    check: Step


class Bounded(BaseModel):
    small: Annotated[int, Field(ge=3, le=5)]
    positive: Annotated[float, Field(gt=0, lt=0.5)]
    negative: Annotated[int, Field(lt=0)]
    tens: Annotated[int, Field(multiple_of=10, gt=15)]
    short: Annotated[str, Field(max_length=4)]
    long: Annotated[str, Field(min_length=40)]
    pair: Annotated[list[int], Field(min_length=2)]


class Kinds(BaseModel):
    flag: bool
    colour: Colour
    mode: Literal["fast", "slow"]
    maybe: int | None
    when: datetime.datetime
    day: datetime.date
    key: uuid.UUID
    counts: dict[str, int]
    point: tuple[int, str]
    tags: Annotated[set[str], Field(min_length=3)]
    anything: Any
    optional_note: str | None = None


class Node(BaseModel):
    name: str
    children: list[Node]
    next: Node | None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Owner(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]
    pets: list[Cat | Dog]
    best: Step | None


MODELS = [Step, Solution, Bounded, Kinds, Node, Owner]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_pydantic_schemas_are_filled_with_valid_values(model: type[BaseModel]) -> None:
    value = instance_of(model.model_json_schema(), text=TEXT)
    model.model_validate(value)  # raises when the value does not fit


@pytest.mark.parametrize(
    "model", [Step, Solution, Node, Owner], ids=lambda m: m.__name__
)  # the strict form keeps only what OpenAI's strict mode allows
def test_the_strict_schemas_the_sdk_sends_are_filled_with_every_property(
    model: type[BaseModel],
) -> None:
    schema = to_strict_json_schema(model)
    value = instance_of(schema, text=TEXT)
    model.model_validate(value)
    assert set(value) == set(schema["properties"])  # strict: all of them, none more


def test_strings_carry_the_answer_and_arrays_stay_empty_unless_told() -> None:
    value = instance_of(Solution.model_json_schema(), text=TEXT)
    assert value == {
        "steps": [],
        "final_answer": TEXT,
        "check": {"explanation": TEXT, "output": 0},
    }


def test_bounds_formats_and_first_choices() -> None:
    bounded = Bounded.model_validate(instance_of(Bounded.model_json_schema(), text=TEXT))
    assert (bounded.small, bounded.negative) == (3, -1)
    assert bounded.tens == 20 and 0 < bounded.positive < 0.5
    assert bounded.short == TEXT[:4] and bounded.long.startswith(TEXT)
    kinds = Kinds.model_validate(instance_of(Kinds.model_json_schema(), text=TEXT))
    assert kinds.colour is Colour.RED and kinds.mode == "fast" and kinds.maybe == 0
    assert len(kinds.tags) == 3  # distinct, as a set's items must be


def test_a_recursive_model_ends() -> None:
    schema = Node.model_json_schema()
    assert schema["$ref"] == "#/$defs/Node"  # the root is the definition being filled
    node = Node.model_validate(instance_of(schema, text=TEXT))
    assert node.next is None  # the branch that does not recurse


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": ["null", "integer"], "minimum": 7}, 7),
        ({"type": "number", "minimum": 1, "exclusiveMinimum": True}, 2.0),  # draft 4 flags
        ({"enum": ["x", "y"], "type": "string"}, "x"),
        ({"const": 42}, 42),
        ({"type": "string", "format": "email"}, "sim@example.com"),
        ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}, [0, TEXT]),
        ({"required": ["x"], "additionalProperties": {"type": "integer"}}, {"x": 0}),
        ({"oneOf": [{"type": "boolean"}, {"type": "string"}]}, True),
        (True, TEXT),
    ],
)
def test_raw_schemas(schema: Any, expected: Any) -> None:
    assert instance_of(schema, text=TEXT) == expected


def test_all_of_merges_a_referenced_definition_with_the_other_parts() -> None:
    schema = {
        "allOf": [{"$ref": "#/definitions/A"}, {"properties": {"b": {"type": "boolean"}}}],
        "definitions": {"A": {"properties": {"a": {"type": "integer"}}, "required": ["a"]}},
    }
    assert instance_of(schema, text=TEXT) == {"a": 0, "b": True}


@pytest.mark.parametrize(
    "schema", [{"$ref": "#/$defs/Missing"}, {"$ref": "https://example.com/s.json"}, []]
)
def test_an_unreadable_schema_raises(schema: Any) -> None:
    with pytest.raises(SchemaError):
        instance_of(schema, text=TEXT)


@given(
    low=st.none() | st.integers(-50, 50),
    high=st.none() | st.integers(-50, 50),
    above=st.none() | st.integers(-50, 50),
    below=st.none() | st.integers(-50, 50),
    step=st.none() | st.integers(1, 12),
    integer=st.booleans(),
)
def test_numbers_respect_every_bound_that_some_value_meets(
    low: int | None,
    high: int | None,
    above: int | None,
    below: int | None,
    step: int | None,
    integer: bool,
) -> None:
    names = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    bounds = dict(zip(names, (low, high, above, below, step), strict=True))
    schema = {"type": "integer" if integer else "number"} | {
        k: v for k, v in bounds.items() if v is not None
    }

    def fits(value: float) -> bool:
        return (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
            and (step is None or math.isclose(value / step, round(value / step), abs_tol=1e-9))
        )

    # Only schemas some integer meets (a number schema then has that value too).
    assume(any(fits(v) for v in range(-700, 701)))
    value = instance_of(schema, text=TEXT)
    assert isinstance(value, int if integer else float) and fits(value)
