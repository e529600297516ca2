"""Language models behind one port (port.py); adapters beside it (litellm_adapter.py)."""

from service.llm.port import (
    ChatDelta,
    ChatRequest,
    InvalidPrompt,
    Provider,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ToolCallFragment,
)

__all__ = [
    "ChatDelta",
    "ChatRequest",
    "InvalidPrompt",
    "Provider",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "ToolCallFragment",
]
