"""Request bodies frugal accepts, validated before anything is sent upstream; the error body.

The models check what frugal relies on and let every other field through (``extra="allow"``):
the body forwarded upstream is always the client's own JSON, never a re-serialised model, so a
provider-specific field reaches the provider unchanged.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

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


class ResponseItem(BaseModel):
    """An item of a Responses API ``input``: a message (``role``, ``content``) or another kind
    (``type``), passed on as given."""

    model_config = ConfigDict(extra="allow")
    type: StrictStr | None = None
    role: StrictStr | None = None


class ResponseTool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr


class ResponsesRequest(_Body):
    """``POST /v1/responses``. ``model`` and ``input`` may be left to a stored prompt template
    (``prompt``); such a call, and any that keeps state at the provider, is relayed, not
    cached (`frugal.cache.scope`)."""

    model: NonEmptyStr | None = None
    input: (
        StrictStr | Annotated[list[ResponseItem], Field(min_length=1, max_length=MAX_ITEMS)] | None
    ) = None
    instructions: StrictStr | None = None
    previous_response_id: StrictStr | None = None
    store: StrictBool | None = None
    stream: StrictBool = False
    tools: Annotated[list[ResponseTool], Field(max_length=MAX_ITEMS)] | None = None


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
