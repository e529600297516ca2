"""Counting tokens without a provider: tiktoken's cl100k_base, read from the copy litellm ships
(found without importing litellm, which takes seconds)."""

import importlib.util
import json
import os
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def encoding():
    import tiktoken

    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        bundled = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", bundled)
    return tiktoken.get_encoding("cl100k_base")


def count_chat_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of chat messages as OpenAI counts them: each message's text and tool calls,
    3 tokens of framing per message and 3 to prime the reply. CPU work: call it off the loop."""
    encode = encoding().encode
    total = 3
    for message in messages:
        total += 3
        content = message.get("content")
        if isinstance(content, str):
            total += len(encode(content))
        elif isinstance(content, list):
            total += sum(len(encode(part.get("text", ""))) for part in content if isinstance(part, dict))
        if message.get("tool_calls"):
            total += len(encode(json.dumps(message["tool_calls"])))
        if message.get("name"):
            total += 1
    return total
