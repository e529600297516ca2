"""The model list file (ASSISTD_MODELS): model alias -> provider deployment."""

from typing import Any

import yaml


def load_model_list(path: str) -> list[dict[str, Any]]:
    """Reads `model_list: [{model_name, litellm_params: {model, api_base, api_key, ...}}]`."""
    if not path:
        return []
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    entries = config.get("model_list", config if isinstance(config, list) else [])
    for entry in entries:
        if "model_name" not in entry or "model" not in entry.get("litellm_params", {}):
            raise ValueError(f"{path}: each model_list entry needs model_name and litellm_params.model")
    return entries
