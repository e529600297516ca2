"""Truncation "auto": a prompt longer than the model's context window loses its oldest turns.

OpenAI documents it for both APIs: an Assistants run's default `truncation_strategy` drops
messages to fit the model's context length, and a response with `truncation: "auto"` drops items
from the beginning of the conversation. Here the system instructions always stay, and so does the
last turn; older turns go first. A turn is one chat message with the tool results that answer it,
so a tool call is never sent without its result or a result without its call.

Tokens are counted with cl100k_base (service/llm/tokens.py): exact for OpenAI's models, an
estimate for others. Most prompts are far below their window: a bound from their UTF-8 size
(a token is at least one byte) settles those without counting, and a prompt under SMALLEST
tokens by that bound without even asking the window (finding one may read litellm's table).
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from service.llm.tokens import count_chat_tokens

Chat = list[dict[str, Any]]
_FRAMING = 4  # tokens around each message, and to prime the reply (tokens.py counts 3 + 3)
_IMAGE_TOKENS = 1_600  # what one image may cost (a high-detail tile grid of a large image)
SMALLEST = 1_024  # input tokens any chat model takes: a smaller window counts as this


def _size_bound(message: dict[str, Any]) -> int:
    """At least the message's tokens: its text's UTF-8 bytes, its images' worst case."""
    total = _FRAMING
    content = message.get("content")
    parts = [content] if isinstance(content, str) else content if isinstance(content, list) else []
    for part in parts:
        if isinstance(part, str):
            text = part
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            text = part["text"]
        else:
            total += _IMAGE_TOKENS
            continue
        total += len(text) if text.isascii() else len(text.encode())
    if message.get("tool_calls"):
        total += len(json.dumps(message["tool_calls"]))
    return total


def _turns(chat: Chat, first: int) -> list[tuple[int, int]]:
    """[start, end) of each turn from index first: a message and the tool results after it."""
    turns: list[tuple[int, int]] = []
    for index in range(first, len(chat)):
        if chat[index].get("role") == "tool" and turns:
            turns[-1] = (turns[-1][0], index + 1)
        else:
            turns.append((index, index + 1))
    return turns


def _message_tokens(messages: Chat) -> list[int]:
    """Each message's tokens (CPU work: run it off the loop)."""
    return [count_chat_tokens([message]) - 3 for message in messages]


async def fit(chat: Chat, window: Callable[[], Awaitable[int | None]]) -> Chat:
    """chat, without as many of its oldest turns as it takes to fit the model's window (None:
    not known, nothing is dropped). The system messages at its head and its last turn are always
    kept (a prompt that still does not fit is sent as it is: the model refuses it clearly)."""
    bound = 3 + sum(_size_bound(message) for message in chat)
    if bound <= SMALLEST:
        return chat
    budget = await window()
    if budget is None or bound <= max(budget, SMALLEST):
        return chat
    budget = max(budget, SMALLEST)
    first = 0
    while first < len(chat) and chat[first].get("role") in ("system", "developer"):
        first += 1
    turns = _turns(chat, first)
    counts = await asyncio.to_thread(_message_tokens, chat)
    total = 3 + sum(counts)
    dropped = 0  # turns dropped from the oldest
    while total > budget and dropped < len(turns) - 1:
        start, end = turns[dropped]
        total -= sum(counts[start:end])
        dropped += 1
    if dropped == 0:
        return chat
    return chat[:first] + chat[turns[dropped][0] :]
