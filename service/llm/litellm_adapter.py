"""The litellm adapter of the provider port: any provider litellm reaches.

A model name found in the model list goes through a litellm Router (alias -> deployment, keys
from env via `os.environ/NAME`); any other name goes to litellm as-is (`openai/x` with
OPENAI_API_BASE, `anthropic/x`, `ollama/x`, ...). litellm is imported when the adapter is built,
once, at start-up (~2.6 s).
"""

import asyncio
import logging
import os
import re
from collections.abc import AsyncGenerator
from types import ModuleType
from typing import Any

from service.llm.model_list import load_model_list
from service.llm.port import (
    ChatDelta,
    ChatRequest,
    InvalidPrompt,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ToolCallFragment,
)

log = logging.getLogger(__name__)


def import_litellm() -> ModuleType:
    """litellm, kept offline: unless told to use its bundled price map, importing it fetches one
    from the internet (and retries for seconds where there is none)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class LiteLLMProvider:
    def __init__(self, models_path: str = "", retries: int = 0, timeout: float = 600.0):
        self._litellm = import_litellm()
        self._retries = retries
        self._timeout = timeout
        self._model_list = load_model_list(models_path)
        self._aliases = frozenset(entry["model_name"] for entry in self._model_list)
        self._router = (
            self._litellm.Router(model_list=self._model_list, num_retries=retries, timeout=timeout)
            if self._model_list
            else None
        )

    def aliases(self) -> list[str]:
        return sorted(self._aliases)

    def provider_of(self, model: str) -> str:
        """The provider whose credentials a model takes: the prefix of its litellm name (of its
        deployment, for an alias), `openai/x` -> openai; litellm's own guess for a bare name."""
        deployment = next((e["litellm_params"]["model"] for e in self._model_list if e["model_name"] == model), model)
        prefix, slash, _ = str(deployment).partition("/")
        if slash:
            return prefix
        try:
            return self._litellm.get_llm_provider(model=deployment)[1]
        except Exception:  # litellm cannot tell: no tenant key applies
            return ""

    def _router_for(self, model: str) -> Any:
        """The litellm Router when model is an alias of the model list, else None."""
        return self._router if model in self._aliases else None

    async def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        deployment = next((e["litellm_params"]["model"] for e in self._model_list if e["model_name"] == model), model)
        return await asyncio.to_thread(self._litellm.token_counter, model=deployment, messages=messages)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        try:
            router = self._router_for(model)
            if router is not None:
                response = await router.aembedding(model=model, input=texts)
            else:
                response = await self._litellm.aembedding(
                    model=model, input=texts, num_retries=self._retries, timeout=self._timeout
                )
        except Exception as exc:
            raise self._error(exc) from exc
        items = sorted(response.data, key=lambda item: item["index"] if isinstance(item, dict) else item.index)
        return [item["embedding"] if isinstance(item, dict) else item.embedding for item in items]

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        kwargs = request.chat_completions_body(request.model)
        own = (request.credentials or {}).get(self.provider_of(request.model))
        if own is not None:  # the tenant's key (and base URL): litellm prefers them to the deployment's
            kwargs["api_key"] = own.api_key
            if own.api_base:
                kwargs["api_base"] = own.api_base
        try:
            router = self._router_for(request.model)
            if router is not None:
                response = await router.acompletion(**kwargs)
            else:
                response = await self._litellm.acompletion(num_retries=self._retries, timeout=self._timeout, **kwargs)
            try:
                async for chunk in response:
                    yield _to_delta(chunk)
            finally:
                await _close(response)
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> ProviderError:
        """litellm's exception as one of the port's errors."""
        errors = self._litellm.exceptions
        if isinstance(exc, errors.RateLimitError):
            return RateLimited(_message(exc))
        if isinstance(exc, errors.BadRequestError):
            return InvalidPrompt(_message(exc))
        return ProviderUnavailable(_message(exc))


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
