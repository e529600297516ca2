"""The one door to language models: litellm, imported once at start-up.

A model name found in the model list file goes through a litellm Router (alias ->
deployment, keys from env via `os.environ/NAME`); any other name goes to litellm as-is
(`openai/x` with OPENAI_API_BASE, `anthropic/x`, `ollama/x`, ...).
"""

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import yaml

log = logging.getLogger(__name__)


@dataclass
class ToolCallFragment:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass
class ChatDelta:
    text: str = ""
    tool_calls: list[ToolCallFragment] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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


class LLMError(Exception):
    """A provider failure, with the OpenAI run `last_error.code` it maps to."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def load_model_list(path: str) -> list[dict[str, Any]]:
    """Reads a model list file: `model_list: [{model_name, litellm_params: {...}}]`."""
    if not path:
        return []
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    entries = config.get("model_list", config if isinstance(config, list) else [])
    for entry in entries:
        if "model_name" not in entry or "model" not in entry.get("litellm_params", {}):
            raise ValueError(f"{path}: each model_list entry needs model_name and litellm_params.model")
    return entries


class LLM:
    def __init__(self, models_path: str = "", retries: int = 0, timeout: float = 600.0):
        import litellm  # imported here, once, at start-up (~2.6 s); service/__init__.py keeps it offline

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        self._litellm = litellm
        self._retries = retries
        self._timeout = timeout
        self._model_list = load_model_list(models_path)
        self._router = (
            litellm.Router(model_list=self._model_list, num_retries=retries, timeout=timeout)
            if self._model_list
            else None
        )

    def aliases(self) -> list[str]:
        return sorted({entry["model_name"] for entry in self._model_list})

    async def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens by litellm's tokenizer for the model, counted off the event loop."""
        deployment = next((e["litellm_params"]["model"] for e in self._model_list if e["model_name"] == model), model)
        return await asyncio.to_thread(self._litellm.token_counter, model=deployment, messages=messages)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings of texts, in order. Raises LLMError on provider failure."""
        try:
            if self._router is not None and model in self.aliases():
                response = await self._router.aembedding(model=model, input=texts)
            else:
                response = await self._litellm.aembedding(
                    model=model, input=texts, num_retries=self._retries, timeout=self._timeout
                )
        except Exception as exc:
            raise LLMError("server_error", _message(exc)) from exc
        items = sorted(response.data, key=lambda item: item["index"] if isinstance(item, dict) else item.index)
        return [item["embedding"] if isinstance(item, dict) else item.embedding for item in items]

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Streams the model's answer. Raises LLMError on provider failure."""
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "tools": request.tools or None,
            "tool_choice": request.tool_choice if request.tools else None,
            "parallel_tool_calls": request.parallel_tool_calls if request.tools else None,
            "response_format": request.response_format,
            "reasoning_effort": request.reasoning_effort,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        try:
            if self._router is not None and request.model in self.aliases():
                response = await self._router.acompletion(**kwargs)
            else:
                response = await self._litellm.acompletion(
                    num_retries=self._retries, timeout=self._timeout, **kwargs
                )
            try:
                async for chunk in response:
                    yield _to_delta(chunk)
            finally:
                await _close(response)
        except self._litellm.exceptions.RateLimitError as exc:
            raise LLMError("rate_limit_exceeded", _message(exc)) from exc
        except self._litellm.exceptions.BadRequestError as exc:
            raise LLMError("invalid_prompt", _message(exc)) from exc
        except LLMError:
            raise
        except Exception as exc:  # any other provider failure: connection, 5xx, auth, timeout
            raise LLMError("server_error", _message(exc)) from exc


async def _close(response) -> None:
    aclose = getattr(response, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing is best effort; the request is over either way
            log.debug("closing the provider stream failed", exc_info=True)


def _message(exc: Exception) -> str:
    """The provider's words, without litellm's `litellm.SomeError: ` prefixes."""
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return re.sub(r"^(litellm\.\w+: )+", "", text)


def _to_delta(chunk) -> ChatDelta:
    delta = ChatDelta()
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        delta.prompt_tokens = usage.prompt_tokens
        delta.completion_tokens = usage.completion_tokens
    for choice in getattr(chunk, "choices", None) or []:
        delta.finish_reason = choice.finish_reason or delta.finish_reason
        message = choice.delta
        if message is None:
            continue
        delta.text += message.content or ""
        for call in message.tool_calls or []:
            function = call.function
            delta.tool_calls.append(
                ToolCallFragment(
                    index=call.index or 0,
                    id=call.id,
                    name=getattr(function, "name", None),
                    arguments=getattr(function, "arguments", None),
                )
            )
    return delta
