"""One wrapper around the provider that reports each model call to observers (metrics, traces).

Metrics and traces want the same moments of a call: its start, its first text or tool-call delta,
its usage, and how it ended. This module finds them once, in one pass over the deltas; each
observer only records them.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

from service.llm.port import ChatDelta, ChatRequest, ProviderError


class CallObserver(Protocol):
    """What one observer does with one model call (made when the call starts)."""

    def first_token(self, seconds: float) -> None: ...

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None: ...

    def ended(self, outcome: str, seconds: float, error: BaseException | None) -> None:
        """outcome: "ok", a ProviderError's code, "cancelled", or "error" (anything else)."""


Observe = Callable[[ChatRequest], CallObserver]


class ObservedProvider:
    """A provider whose stream calls are reported to observers; everything else passes through."""

    def __init__(self, inner: Any, observers: Sequence[Observe]) -> None:
        self._inner = inner
        self._observers = list(observers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        watchers = [observe(request) for observe in self._observers]
        start = time.perf_counter()
        first = True
        outcome = "ok"
        error: BaseException | None = None
        inner = self._inner.stream(request)
        try:
            async for delta in inner:
                if first and (delta.text or delta.tool_calls):
                    first = False
                    for watcher in watchers:
                        watcher.first_token(time.perf_counter() - start)
                if delta.prompt_tokens is not None:
                    for watcher in watchers:
                        watcher.usage(delta.prompt_tokens, delta.completion_tokens or 0)
                yield delta
        except ProviderError as exc:
            outcome, error = exc.code, exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome, error = "error", exc
            raise
        finally:
            closing = getattr(inner, "aclose", None)
            if closing is not None:
                await closing()
            for watcher in watchers:
                watcher.ended(outcome, time.perf_counter() - start, error)
