"""The provider port: what the run engine needs from a language model, and nothing more.

A turn sends a ChatRequest and reads a stream of ChatDeltas (text, tool-call fragments, usage,
finish reason). Failures come back as one of a small set of ProviderErrors, each knowing the
OpenAI `last_error.code` a run shows for it. Adapters (litellm today) live beside this module.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolCallFragment:
    """A streamed piece of a function call. `index` is the provider's slot for the call; the
    first piece of a call usually carries `id` and `name`, later ones only `arguments` text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass
class ChatDelta:
    text: str = ""
    tool_calls: list[ToolCallFragment] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None  # set on the chunk that reports usage
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ProviderCredential:
    """A tenant's own key for one provider (and, optionally, its own base URL)."""

    api_key: str = field(repr=False)  # never in a repr, so never in a log line
    api_base: str = ""


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    # The tenant's own provider credentials, by provider name ("openai", "anthropic", ...): the
    # adapter uses the one of the model's provider instead of the server's key. None: the server's.
    credentials: dict[str, ProviderCredential] | None = field(default=None, repr=False)

    def chat_completions_body(self, model: str) -> dict[str, Any]:
        """The streamed OpenAI chat-completions request for `model`: unset options are left out,
        and tool options are sent only with tools."""
        body: dict[str, Any] = {
            "model": model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        optional = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "tools": self.tools or None,
            "tool_choice": self.tool_choice if self.tools else None,
            "parallel_tool_calls": self.parallel_tool_calls if self.tools else None,
            "response_format": self.response_format,
            "reasoning_effort": self.reasoning_effort,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


class ProviderError(Exception):
    """A provider failure. `code` is what a run's `last_error.code` says about it."""

    code = "server_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.retry_after: float | None = None  # the provider's hint, in seconds, when it gave one


class RateLimited(ProviderError):
    code = "rate_limit_exceeded"


class InvalidPrompt(ProviderError):
    """The provider refused the request itself (bad parameters, context too long, …)."""

    code = "invalid_prompt"


class ProviderUnavailable(ProviderError):
    """Anything else: connection refused or dropped, 5xx, authentication, timeout."""

    code = "server_error"


class Provider(Protocol):
    def aliases(self) -> list[str]:
        """Model names of the configured model list (shown by GET /v1/models)."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        """The model's answer as it arrives. Raises ProviderError. Closing the iterator (or
        cancelling its reader) stops the provider request."""
        ...

    async def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of messages for model, counted off the event loop."""
        ...

    async def context_window(self, model: str) -> int | None:
        """How many input tokens model takes, or None when that is not known."""
        ...

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order. Raises ProviderError."""
        ...
