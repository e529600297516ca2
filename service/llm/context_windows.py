"""How many input tokens a model takes (its context window), for `truncation: auto`.

From the model list first (`model_info: {max_input_tokens: N}`, litellm's own key), else from the
model table litellm ships, read as plain JSON (importing litellm takes seconds): by the model's
name, then by the name without its provider prefix ("openai/gpt-4o" -> "gpt-4o"). None when
neither knows the model: then nothing is truncated.
"""

import importlib.util
import json
import os
from functools import lru_cache

_TABLE = "model_prices_and_context_window_backup.json"


@lru_cache(maxsize=1)
def shipped_windows() -> dict[str, int]:
    """{model name: max input tokens} from litellm's table ({} without litellm). Reads ~3.5 MB:
    call it off the event loop."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    try:
        with open(os.path.join(spec.submodule_search_locations[0], _TABLE)) as f:
            table = json.load(f)
    except (OSError, ValueError):
        return {}
    return {
        name: int(entry["max_input_tokens"])
        for name, entry in table.items()
        if isinstance(entry, dict) and isinstance(entry.get("max_input_tokens"), int)
    }


def window_of(model: str, model_info: dict | None, shipped: dict[str, int]) -> int | None:
    """The context window of model (a provider model name), given its model-list model_info."""
    given = (model_info or {}).get("max_input_tokens")
    if isinstance(given, int) and given > 0:
        return given
    return shipped.get(model) or shipped.get(model.split("/", 1)[-1])
