"""The `static` chunking strategy: windows of max_chunk_size_tokens tokens that overlap by
chunk_overlap_tokens, counted with a real tokenizer (tiktoken's cl100k_base)."""

from service.llm.tokens import encoding

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP = 400


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """The chunks of text, in order. CPU work: call it from a worker thread."""
    tokens = encoding().encode(text)
    step = max(1, max_tokens - overlap)
    chunks = []
    for start in range(0, len(tokens), step):
        chunks.append(encoding().decode(tokens[start : start + max_tokens]))
        if start + max_tokens >= len(tokens):
            break
    return [c for c in chunks if c.strip()]
