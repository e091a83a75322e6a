"""Request bodies frugal accepts, validated before anything is sent upstream; the error body.

The models check what frugal relies on and let every other field through (``extra="allow"``):
the body forwarded upstream is always the client's own JSON, never a re-serialised model, so a
provider-specific field reaches the provider unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
TokenList = Annotated[list[StrictInt], Field(min_length=1)]
# Messages of a chat, prompts of a completion or inputs of an embedding: OpenAI's own bound on
# embedding inputs, applied to all three so that no request can ask for unbounded work.
MAX_ITEMS = 2048


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Body):
    model: NonEmptyStr
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_ITEMS)]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None


class CompletionRequest(_Body):
    model: NonEmptyStr
    prompt: (
        StrictStr
        | Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_ITEMS)]
        | TokenList
        | Annotated[list[TokenList], Field(min_length=1, max_length=MAX_ITEMS)]
    )
    stream: StrictBool = False
    stream_options: StreamOptions | None = None


class EmbeddingRequest(_Body):
    model: NonEmptyStr
    # An empty string has no embedding: OpenAI refuses it, and so does frugal, before any call.
    input: (
        NonEmptyStr
        | Annotated[list[NonEmptyStr], Field(min_length=1, max_length=MAX_ITEMS)]
        | TokenList
        | Annotated[list[TokenList], Field(min_length=1, max_length=MAX_ITEMS)]
    )


def _other_than(*kinds: str) -> Any:
    """A ``type`` that is none of ``kinds``: those have a model of their own."""

    def check(value: str) -> str:
        if value in kinds:
            raise ValueError(f"a {value!r} item does not have this shape")
        return value

    return Annotated[
        StrictStr, AfterValidator(check), Field(json_schema_extra={"not": {"enum": list(kinds)}})
    ]


class ResponseTextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["input_text", "output_text"]
    text: StrictStr


class ResponseOtherPart(BaseModel):
    """An image, a file, audio...: passed on as given (and never embedded)."""

    model_config = ConfigDict(extra="allow")
    type: _other_than("input_text", "output_text")  # type: ignore[valid-type]


class ResponseMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: StrictStr | list[ResponseTextPart | ResponseOtherPart]


class ResponseOtherItem(BaseModel):
    """A function call, its output, a reasoning item...: passed on as given."""

    model_config = ConfigDict(extra="allow")
    type: _other_than("message")  # type: ignore[valid-type]


# An item of a Responses API ``input``: a message (``role``, ``content``) or another kind.
ResponseItem = ResponseMessage | ResponseOtherItem


class ResponseTool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: NonEmptyStr


class ResponsesRequest(_Body):
    """``POST /v1/responses``: ``model`` and ``input``, unless a stored prompt template
    (``prompt``) gives them; a template call, and any that keeps state at the provider, is
    relayed, not cached (`frugal.cache.scope`). ``previous_response_id`` is the provider's to
    check (any value makes the call stateful): whether it names a stored response only the
    provider knows, and it answers 400 when not."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["model", "input"],
                    "properties": {"model": {"type": "string"}, "input": {"not": {"type": "null"}}},
                },
                {"required": ["prompt"], "properties": {"prompt": {"type": "object"}}},
            ]
        },
    )
    model: NonEmptyStr | None = None
    input: (
        StrictStr | Annotated[list[ResponseItem], Field(min_length=1, max_length=MAX_ITEMS)] | None
    ) = None
    instructions: StrictStr | None = None
    store: StrictBool | None = None
    stream: StrictBool = False
    tools: Annotated[list[ResponseTool], Field(max_length=MAX_ITEMS)] | None = None
    prompt: PromptTemplate | None = None

    @model_validator(mode="after")
    def _model_and_input_or_a_template(self) -> ResponsesRequest:
        if self.prompt is None:
            missing = [name for name in ("model", "input") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required, unless a prompt is given")
        return self


class ProcessPromptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: NonEmptyStr


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which every failure is reported in."""

    error: ErrorDetail
