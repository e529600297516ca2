"""Which adapter serves a model. This is the Provider the engine holds.

A model that speaks OpenAI's API goes to the lean adapter (openai_compat.py): names `openai/<model>`
(at OPENAI_API_BASE, or OpenAI itself) and model-list deployments of such a model. Everything
else goes to litellm, imported the first time a model needs it (it takes seconds), off the loop.
ASSISTD_PROVIDER_ADAPTER=litellm sends every model through litellm; a model-list entry with
`model_info: {adapter: litellm}` sends that alias through litellm.
"""

import asyncio
import os
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

from service.llm.context_windows import shipped_windows, window_of
from service.llm.model_list import load_model_list
from service.llm.openai_compat import Endpoint, OpenAICompatProvider
from service.llm.port import ChatDelta, ChatRequest
from service.llm.tokens import count_chat_tokens

OPENAI_PREFIX = "openai/"  # litellm's name for an OpenAI-compatible endpoint
OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
LEAN_PROVIDER = "openai"  # whose credentials a tenant gives for the models the lean adapter serves


def _secret(value: Any) -> str:
    """A model-list value; `os.environ/NAME` reads it from the environment, as litellm does."""
    text = str(value or "")
    return os.environ.get(text.removeprefix("os.environ/"), "") if text.startswith("os.environ/") else text


class ModelRouter:
    def __init__(self, models_path: str = "", retries: int = 0, timeout: float = 600.0, lean: bool = True):
        self._models_path = models_path
        self._retries = retries
        self._timeout = timeout
        self._model_list = load_model_list(models_path)
        self._lean = OpenAICompatProvider(timeout=timeout, retries=retries) if lean else None
        self._litellm: Any = None
        self._litellm_lock = asyncio.Lock()
        self._shipped_windows: dict[str, int] | None = None  # litellm's table of context windows

    def aliases(self) -> list[str]:
        return sorted({entry["model_name"] for entry in self._model_list})

    def endpoint(self, model: str) -> Endpoint | None:
        """Where the lean adapter reaches model, or None when litellm serves it."""
        if self._lean is None:
            return None
        deployments = [e for e in self._model_list if e["model_name"] == model]
        if len(deployments) > 1:
            return None  # several deployments of one alias: litellm's Router balances them
        if deployments:
            if (deployments[0].get("model_info") or {}).get("adapter") == "litellm":
                return None
            params = deployments[0]["litellm_params"]
            name = str(params["model"])
            if not name.startswith(OPENAI_PREFIX):
                return None
            base = _secret(params.get("api_base")) or _default_base()
            return Endpoint(base, _secret(params.get("api_key")) or os.environ.get("OPENAI_API_KEY", ""), name[7:])
        if model.startswith(OPENAI_PREFIX):
            return Endpoint(_default_base(), os.environ.get("OPENAI_API_KEY", ""), model[len(OPENAI_PREFIX) :])
        return None

    async def _litellm_adapter(self):
        """The litellm adapter, built the first time a model needs it (importing litellm takes
        seconds: it happens in a worker thread, so the loop serves other runs meanwhile)."""
        async with self._litellm_lock:
            if self._litellm is None:
                from service.llm.litellm_adapter import LiteLLMProvider

                self._litellm = await asyncio.to_thread(
                    LiteLLMProvider, self._models_path, retries=self._retries, timeout=self._timeout
                )
        return self._litellm

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        endpoint = self.endpoint(request.model)
        if endpoint is not None:
            assert self._lean is not None
            own = (request.credentials or {}).get(LEAN_PROVIDER)
            if own is not None:  # the tenant's key (and base URL) instead of the server's
                endpoint = replace(endpoint, api_key=own.api_key, base_url=own.api_base or endpoint.base_url)
            deltas = self._lean.stream(request, endpoint)
        else:
            deltas = (await self._litellm_adapter()).stream(request)
        try:
            async for delta in deltas:
                yield delta
        finally:
            await deltas.aclose()  # a cut-off consumer closes the provider stream at once

    async def context_window(self, model: str) -> int | None:
        if self._shipped_windows is None:
            self._shipped_windows = await asyncio.to_thread(shipped_windows)  # read once, off the loop
        shipped = self._shipped_windows
        deployments = [e for e in self._model_list if e["model_name"] == model]
        if not deployments:
            return window_of(model, None, shipped)
        # an alias: the smallest of its deployments' windows, when each of them is known
        windows = [window_of(str(e["litellm_params"]["model"]), e.get("model_info"), shipped) for e in deployments]
        known = [window for window in windows if window is not None]
        return min(known) if len(known) == len(windows) else None

    async def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        if self.endpoint(model) is not None:
            return await asyncio.to_thread(count_chat_tokens, messages)
        return await (await self._litellm_adapter()).count_tokens(model, messages)

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        endpoint = self.endpoint(model)
        if endpoint is not None:
            assert self._lean is not None
            return await self._lean.embed(endpoint, texts)
        return await (await self._litellm_adapter()).embed(model, texts)

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()


def _default_base() -> str:
    return os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE
