"""OpenAI's Response JSON -> the typed `Response`, and the typed usage the renderer fills in.

A response's record keeps the fields its request fixes as OpenAI's JSON (StoredResponse.base,
built by request.base()); `response_from_json` turns them into the typed message once per
rendering. It also reads the whole response JSON that records written before the typed
`Response` kept (StoredResponse.final). It is the inverse of the edge's codec.render for these
messages, and lenient: the JSON was built by the service itself, so a key it does not know or a
value of another type (an unchecked `user`, say) is left out rather than refused. Pure: no I/O.
"""

from typing import Any

from assistd.v1 import response_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as F
from google.protobuf.message import Message

from service.protojson import enum_number, is_json_inline, is_json_list

Json = dict[str, Any]
_SCALARS: dict[int, type | tuple[type, ...]] = {
    F.TYPE_STRING: str,
    F.TYPE_BOOL: bool,
    F.TYPE_DOUBLE: (int, float),
    F.TYPE_FLOAT: (int, float),
}


def response_from_json(data: Json) -> response_pb2.Response:
    """The typed response that OpenAI's response JSON (or the part of it a request fixes) is."""
    response = response_pb2.Response()
    _fill(response, data)
    return response


def _fill(message: Message, data: Any) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Struct":
        if isinstance(data, dict):
            message.update(data)  # type: ignore[attr-defined]
        return
    if descriptor.full_name == "google.protobuf.Value":
        json_format.ParseDict(data, message)
        return
    if is_json_list(descriptor):
        (items,) = descriptor.fields
        _fill_field(message, items, data)
        return
    if not isinstance(data, dict):
        return
    inline = next((oneof for oneof in descriptor.oneofs if is_json_inline(oneof)), None)
    if inline is not None:  # the member named by `type`
        if any(member.name == data.get("type") for member in inline.fields):
            chosen = getattr(message, data["type"])
            chosen.SetInParent()
            _fill(chosen, data)
        return
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is not None and value is not None:
            _fill_field(message, field, value)


def _fill_field(message: Message, field: Any, value: Any) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if isinstance(value, dict):
            getattr(message, field.name).update({k: v for k, v in value.items() if isinstance(v, str)})
    elif field.is_repeated:
        container = getattr(message, field.name)
        for item in value if isinstance(value, list) else ():
            if field.type == F.TYPE_MESSAGE:
                _fill(container.add(), item)
            elif _fits(field, item):
                container.append(item)
    elif field.type == F.TYPE_MESSAGE:
        sub = getattr(message, field.name)
        sub.SetInParent()
        _fill(sub, value)
    elif field.type == F.TYPE_ENUM:
        number = enum_number(field.enum_type, value) if isinstance(value, str) else None
        if number is not None:
            setattr(message, field.name, number)
    elif _fits(field, value):
        setattr(message, field.name, value)


def _fits(field: Any, value: Any) -> bool:
    if field.type in _SCALARS:
        return isinstance(value, _SCALARS[field.type]) and (field.type == F.TYPE_BOOL or not isinstance(value, bool))
    return isinstance(value, int) and not isinstance(value, bool)  # the integer types


def usage(prompt_tokens: int, completion_tokens: int) -> response_pb2.ResponseUsage:
    """A response's usage; both details objects are always there (the SDK requires them)."""
    used = response_pb2.ResponseUsage(
        input_tokens=prompt_tokens, output_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    used.input_tokens_details.SetInParent()
    used.output_tokens_details.SetInParent()
    return used
