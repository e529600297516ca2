"""google.protobuf.Struct <-> plain Python, shared by the edge (JSON) and the engine (litellm)."""

from typing import Any

from google.protobuf import json_format, struct_pb2


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Struct keeps every number as a double; whole ones come back as integers (JSON Schema `minimum: 1`)."""
    return _plain_numbers(json_format.MessageToDict(struct))


def _plain_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value
