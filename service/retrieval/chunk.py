"""The `static` chunking strategy: windows of max_chunk_size_tokens tokens that overlap by
chunk_overlap_tokens, counted with a real tokenizer (tiktoken's cl100k_base)."""

import importlib.util
import os
from functools import lru_cache

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP = 400


@lru_cache(maxsize=1)
def _encoding():
    """cl100k_base, read from the copy litellm ships (tiktoken would download it otherwise).
    The copy is found without importing litellm, which takes seconds."""
    import tiktoken

    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        bundled = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", bundled)
    return tiktoken.get_encoding("cl100k_base")


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """The chunks of text, in order. CPU work: call it from a worker thread."""
    tokens = _encoding().encode(text)
    step = max(1, max_tokens - overlap)
    chunks = []
    for start in range(0, len(tokens), step):
        chunks.append(_encoding().decode(tokens[start : start + max_tokens]))
        if start + max_tokens >= len(tokens):
            break
    return [c for c in chunks if c.strip()]
