"""The lean adapter of the provider port: OpenAI-compatible chat completions read off the wire.

For OpenAI itself and the servers that speak its API (vLLM, SGLang, Ollama, llama.cpp, LM Studio,
TGI, ...). One aiohttp session per process, its pool sized for thousands of concurrent streams;
SSE lines are parsed straight into ChatDeltas, with no SDK objects in between; HTTP failures
become the port's errors. A stream whose data is already buffered still gives the event loop a
turn every few lines, so one fast answer cannot starve the other streams.
"""

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from service.llm.port import (
    ChatDelta,
    ChatRequest,
    InvalidPrompt,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ToolCallFragment,
)

YIELD_EVERY = 16  # SSE lines read from a buffered stream before the event loop gets a turn
MAX_CONNECTIONS = 10_000
MAX_BACKOFF_SECONDS = 20.0
_REFUSED = {400, 404, 413, 422}  # the request itself is wrong: retrying it cannot help


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served: the base URL (`…/v1`), the key, and the name it knows it by."""

    base_url: str
    api_key: str = field(repr=False)  # never in a repr, so never in a log line
    model: str = ""


class OpenAICompatProvider:
    def __init__(self, timeout: float = 600.0, retries: int = 0):
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 30.0))
        self._retries = retries
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=MAX_CONNECTIONS, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """The provider's response once it answered 2xx. Rate limits and unavailability are retried
        (ASSISTD_LLM_RETRIES times, backing off): nothing has been streamed yet, so it is safe."""
        for attempt in range(self._retries + 1):
            try:
                return await self._post_once(endpoint, path, body)
            except (RateLimited, ProviderUnavailable) as exc:
                if attempt == self._retries:
                    raise
                await asyncio.sleep(min(exc.retry_after or 0.5 * 2**attempt, MAX_BACKOFF_SECONDS))
        raise AssertionError("unreachable")

    async def _post_once(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        try:
            response = await self._client().post(endpoint.base_url.rstrip("/") + path, json=body, headers=headers)
        except TimeoutError as exc:
            raise ProviderUnavailable(f"The model provider did not answer in time ({endpoint.base_url}).") from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"Cannot reach the model provider at {endpoint.base_url}: {exc}") from exc
        if response.status >= 400:
            async with response:
                raise _http_error(response.status, await response.text(), response.headers.get("retry-after"))
        return response

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncGenerator[ChatDelta, None]:
        """The model's answer as ChatDeltas. Raises ProviderError. Closing the iterator closes the
        connection, which stops the provider's generation."""
        response = await self._post(endpoint, "/chat/completions", request.chat_completions_body(endpoint.model))
        finished = False
        try:
            read = 0
            while True:
                try:
                    line = await response.content.readline()
                except TimeoutError as exc:
                    raise ProviderUnavailable("The model provider stopped sending in time.") from exc
                except aiohttp.ClientError as exc:
                    raise ProviderUnavailable(f"The model provider's stream broke off: {exc}") from exc
                if not line:
                    raise ProviderUnavailable("The model provider's stream ended before [DONE].")
                read += 1
                if read % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # buffered data never yields by itself
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, `event:` lines
                data = line[5:].strip()
                if data == b"[DONE]":
                    finished = True
                    return
                delta = parse_chunk(data)
                if delta is not None:
                    yield delta
        finally:
            if finished:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # cut off: dropping the connection stops the provider's generation

    async def embed(self, endpoint: Endpoint, texts: list[str]) -> list[list[float]]:
        response = await self._post(endpoint, "/embeddings", {"model": endpoint.model, "input": texts})
        async with response:
            try:
                payload = await response.json(content_type=None)
                items = sorted(payload["data"], key=lambda item: item["index"])
                return [item["embedding"] for item in items]
            except (ValueError, KeyError, TypeError) as exc:
                raise ProviderUnavailable(
                    f"The embedding provider sent an answer that is not an embedding list: {exc}"
                ) from exc


def parse_chunk(data: bytes) -> ChatDelta | None:
    """One `data:` payload of a chat.completion.chunk stream as a ChatDelta (None: nothing in it).
    Raises ProviderUnavailable for a payload that is not a chunk, or an error the stream carries."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ProviderUnavailable(f"The model provider sent a malformed stream chunk: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise ProviderUnavailable(f"The model provider sent a malformed stream chunk: {data[:200]!r}")
    if "error" in chunk:  # some servers report a failure mid-stream as a chunk
        raise ProviderUnavailable(_error_message(chunk["error"]))
    delta = ChatDelta()
    usage = chunk.get("usage")
    if usage:
        delta.prompt_tokens = usage.get("prompt_tokens") or 0
        delta.completion_tokens = usage.get("completion_tokens") or 0
    for choice in chunk.get("choices") or ():
        delta.finish_reason = choice.get("finish_reason") or delta.finish_reason
        message = choice.get("delta") or {}
        delta.text += message.get("content") or ""
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            delta.tool_calls.append(
                ToolCallFragment(
                    index=call.get("index") or 0,
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments"),
                )
            )
    if not (delta.text or delta.tool_calls or delta.finish_reason or usage):
        return None
    return delta


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _http_error(status: int, body: str, retry_after: str | None) -> ProviderError:
    try:
        message = _error_message(json.loads(body).get("error", body))
    except (ValueError, AttributeError):
        message = body.strip()[:500] or f"HTTP {status}"
    if status == 429:
        error = RateLimited(message)
        error.retry_after = _seconds(retry_after)
        return error
    if status in _REFUSED:
        return InvalidPrompt(message)
    return ProviderUnavailable(message)


def _seconds(header: str | None) -> float | None:
    """A Retry-After header in seconds (an HTTP date counts as no hint)."""
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None
