"""Protobuf <-> OpenAI's JSON spellings, shared by the edge (JSON) and the service (validation,
the engine's provider requests): Struct <-> plain Python, and enum values <-> their JSON names."""

import functools
import re
from typing import Any

from assistd.v1 import options_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, EnumValueDescriptor, OneofDescriptor


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


# ---------------------------------------------------------------- the JSON options (options.proto)


def _option(descriptor: Any, extension: Any) -> Any:
    # protoc's .pyi types extensions as plain FieldDescriptors, which Extensions[] does not take
    return descriptor.GetOptions().Extensions[extension]


@functools.cache  # descriptors live as long as the process; options never change
def is_json_list(message: Descriptor) -> bool:
    """A `(json_list)` wrapper: JSON writes it as its one repeated field."""
    return bool(_option(message, options_pb2.json_list))


@functools.cache
def is_json_inline(oneof: OneofDescriptor) -> bool:
    """A `(json_inline)` oneof: JSON writes the chosen member's fields flat."""
    return bool(_option(oneof, options_pb2.json_inline))


def update_resource(descriptor: Descriptor) -> Any:
    """The resource field of an update request (AIP-134: the one message field beside its
    FieldMask `update_mask`); None for any other message."""
    if "update_mask" not in descriptor.fields_by_name:
        return None
    (resource,) = [
        f for f in descriptor.fields if f.message_type is not None and f.message_type.full_name != _FIELD_MASK
    ]
    return resource


_FIELD_MASK = "google.protobuf.FieldMask"


# ---------------------------------------------------------------- enums


def enum_prefix(enum: EnumDescriptor) -> str:
    """`RunStatus` -> `RUN_STATUS_` (buf's ENUM_VALUE_PREFIX)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def _spelling(value: EnumValueDescriptor) -> str:
    """A value's JSON name: its `(json_value)` option, else its lower-case suffix."""
    given: str = _option(value, options_pb2.json_value)
    return given or value.name.removeprefix(enum_prefix(value.type)).lower()


@functools.cache
def _names(enum: EnumDescriptor) -> tuple[dict[int, str], dict[str, int]]:
    by_number = {v.number: _spelling(v) for v in enum.values if v.number}
    return by_number, {name: number for number, name in by_number.items()}


def enum_name(enum: EnumDescriptor, number: int) -> str | None:
    """The JSON name of an enum value (RUN_STATUS_IN_PROGRESS -> "in_progress"); None for the
    zero value and for numbers the enum does not define."""
    return _names(enum)[0].get(number)


def enum_names(enum: EnumDescriptor) -> list[str]:
    """Every JSON name of an enum, in declaration order (its zero value left out)."""
    return list(_names(enum)[0].values())


def enum_number(enum: EnumDescriptor, name: str) -> int | None:
    """The value a JSON name stands for; None when the enum has no such name."""
    return _names(enum)[1].get(name)
