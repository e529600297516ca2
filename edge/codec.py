"""OpenAI JSON <-> protobuf, driven by the message descriptors.

The protos mirror OpenAI's objects field for field, so one set of rules covers every
resource:
- a oneof named `kind` is OpenAI's `type` tag: `{"type": "function", "function": {...}}`; a
  member whose message has no fields is just `{"type": "auto"}`;
- a oneof with the `(json_inline)` option is a tag too, but flat: the member whose `type` enum
  has the JSON `type` is read from (and written as) the object itself (AttributeFilter); when
  its members have no `type` field, the member's name is the `type` (the Responses items);
- a message with the `(json_list)` option is its one repeated field, a JSON list (it gives a
  list presence, or puts it in a oneof);
- enum values are written as their lower-case suffix (`RUN_STATUS_IN_PROGRESS` -> "in_progress")
  or their `(json_value)` option ("default-2024-11-15");
- unset `optional` fields and unset messages are `null` in objects and left out of deltas;
- an update request (one with a FieldMask `update_mask`) takes OpenAI's flat body: the keys go
  into its resource message and name the mask's paths;
- a few places take a bare string for an object, as OpenAI does (the SHORTHANDS below).
The options live in protos/assistd/v1/options.proto.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message

from service.protojson import (
    enum_name,
    enum_names,
    enum_number,
    is_json_inline,
    is_json_list,
    struct_to_python,
    update_resource,
)
from service.validation import quoted

F = FieldDescriptor
TYPE_TAG = "kind"

_INTEGERS = {F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64, F.TYPE_SINT32, F.TYPE_SINT64}
_INT_RANGE = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
}
_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
UPDATE_MASK = "update_mask"


class CodecError(Exception):
    """A request body that does not fit the API: becomes a 400 naming `param`."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_type"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


# Bare strings OpenAI accepts in place of an object, by message type.
_SHORTHANDS: dict[str, Callable[[str], dict]] = {
    "assistd.v1.ResponseFormat": lambda s: {"type": s},
    "assistd.v1.ToolChoice": lambda s: {"type": s},
    "assistd.v1.TextContent": lambda s: {"value": s},
    "assistd.v1.MessageContent": lambda s: {"type": "text", "text": s},
}
# Request-only fields, never written in responses.
_INPUT_ONLY = {"assistd.v1.FileSearchResources": frozenset({"vector_stores"})}
# Fields only the Responses API sets (service/responses/): the Assistants JSON neither reads nor
# writes them, as OpenAI's Assistants objects have no such fields.
_NOT_ASSISTANTS = {
    "assistd.v1.Run": frozenset({"max_tool_calls"}),
    "assistd.v1.FileSearchTool": frozenset({"filters"}),
}
# Objects OpenAI writes back as bare strings: these `kind` members.
_AS_STRING: dict[str, frozenset[str]] = {
    "assistd.v1.ResponseFormat": frozenset({"auto"}),
    "assistd.v1.ToolChoice": frozenset({"none", "auto", "required"}),
}


@functools.cache
def _inline(descriptor: Descriptor) -> OneofDescriptor | None:
    """The message's `(json_inline)` oneof, if it has one."""
    return next((oneof for oneof in descriptor.oneofs if is_json_inline(oneof)), None)


@functools.cache
def _named_by_member(oneof: OneofDescriptor) -> bool:
    """A `(json_inline)` oneof whose members have no `type` field: the member's name is the
    JSON `type` (the Responses item unions, response_item.proto)."""
    return all("type" not in member.message_type.fields_by_name for member in oneof.fields)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(field: FieldDescriptor) -> str:
    if field.type == F.TYPE_MESSAGE:
        return "an object"
    if field.type in _INTEGERS:
        return "an integer"
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return "a number"
    if field.type == F.TYPE_BOOL:
        return "a boolean"
    return "a string"


def _type_error(param: str, expected: str, value: Any) -> CodecError:
    return CodecError(f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.", param)


def enum_to_json(enum: EnumDescriptor, number: int) -> str | None:
    return enum_name(enum, number)


def enum_from_json(enum: EnumDescriptor, value: Any, param: str) -> int:
    """The number of an enum value given by its JSON name; CodecError naming `param` otherwise."""
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    number = enum_number(enum, value)
    if number is None:
        raise CodecError(
            f"Invalid value: {quoted(value)}. Supported values are: {', '.join(repr(a) for a in enum_names(enum))}.",
            param,
            "invalid_value",
        )
    return number


# ---------------------------------------------------------------- JSON -> protobuf


def parse(data: Any, cls: type[Message], path: str = "") -> Message:
    """A request message from a JSON object; raises CodecError naming the bad parameter."""
    message = cls()
    if update_resource(cls.DESCRIPTOR) is not None and isinstance(data, dict):
        _fill_update(message, data)
    else:
        _fill(message, data, path)
    return message


def _fill_update(message: Message, data: dict) -> None:
    """An update request from OpenAI's flat body: the request's own fields (the ids in the
    path) stay on the request, every other key goes into its resource and the update mask."""
    descriptor = message.DESCRIPTOR
    resource = update_resource(descriptor)
    own = {k: v for k, v in data.items() if k in descriptor.fields_by_name and k not in (resource.name, UPDATE_MASK)}
    _fill(message, own, "")
    changes = {k: v for k, v in data.items() if k not in own}
    target = getattr(message, resource.name)
    _fill(target, changes, "")
    target.SetInParent()
    getattr(message, UPDATE_MASK).paths.extend(k for k, v in changes.items() if v is not None)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fill(message: Message, data: Any, path: str) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == _STRUCT:
        if not isinstance(data, dict):
            raise _type_error(path, "an object", data)
        message.update(data)
        return
    if descriptor.full_name == _VALUE:
        json_format.ParseDict(data, message)
        return
    if is_json_list(descriptor):
        (items,) = descriptor.fields
        _fill_field(message, items, data, path)
        return
    if isinstance(data, str) and descriptor.full_name in _SHORTHANDS:
        data = _SHORTHANDS[descriptor.full_name](data)
    if not isinstance(data, dict):
        raise _type_error(path, "an object", data)
    inline = _inline(descriptor)
    if inline is not None:
        member = getattr(message, _inline_member(inline, data, path).name)
        if _named_by_member(inline):
            data = {key: value for key, value in data.items() if key != "type"}
        _fill(member, data, path)
        member.SetInParent()
        return
    tagged = TYPE_TAG in descriptor.oneofs_by_name
    if tagged:
        _fill_tag(message, descriptor, data, path)
    for key, value in data.items():
        if tagged and key == "type":
            continue
        field = descriptor.fields_by_name.get(key)
        param = _join(path, key)
        if field is None or key in _NOT_ASSISTANTS.get(descriptor.full_name, ()):
            raise CodecError(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
        if field.containing_oneof is not None and field.containing_oneof.name == TYPE_TAG:
            if message.WhichOneof(TYPE_TAG) != key:
                raise CodecError(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
        if value is None:
            continue
        _fill_field(message, field, value, param)


def _inline_member(oneof: OneofDescriptor, data: dict, path: str) -> FieldDescriptor:
    """The member of a `(json_inline)` oneof whose `type` enum has the JSON `type`."""
    param = _join(path, "type")
    kind = data.get("type")
    if kind is None:
        raise CodecError(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    allowed: list[str] = []
    if _named_by_member(oneof):
        named = {member.name: member for member in oneof.fields}
        if isinstance(kind, str) and kind in named:
            return named[kind]
        allowed = list(named)
    for member in oneof.fields if not allowed else ():
        enum = member.message_type.fields_by_name["type"].enum_type
        if isinstance(kind, str) and enum_number(enum, kind) is not None:
            return member
        allowed += enum_names(enum)
    if not isinstance(kind, str):
        raise _type_error(param, "a string", kind)
    raise CodecError(
        f"Invalid value: {quoted(kind)}. Supported values are: {', '.join(repr(a) for a in allowed)}.",
        param,
        "invalid_value",
    )


def _fill_tag(message: Message, descriptor: Descriptor, data: dict, path: str) -> None:
    """Selects the `kind` oneof member named by JSON `type`."""
    param = _join(path, "type")
    kind = data.get("type")
    members = {f.name: f for f in descriptor.oneofs_by_name[TYPE_TAG].fields}
    if kind is None:
        raise CodecError(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    if not isinstance(kind, str):
        raise _type_error(param, "a string", kind)
    if kind not in members:
        raise CodecError(
            f"Invalid value: {quoted(kind)}. Supported values are: {', '.join(repr(m) for m in members)}.",
            param,
            "invalid_value",
        )
    if members[kind].type == F.TYPE_MESSAGE:
        getattr(message, kind).SetInParent()


def _fill_field(message: Message, field: FieldDescriptor, value: Any, param: str) -> None:
    if field.is_repeated and field.message_type is not None and field.message_type.GetOptions().map_entry:
        _fill_map(getattr(message, field.name), field.message_type, value, param)
    elif field.is_repeated:
        container = getattr(message, field.name)
        if isinstance(value, str) and (
            field.type == F.TYPE_STRING
            or (field.message_type is not None and field.message_type.full_name in _SHORTHANDS)
        ):
            value = [value]  # a bare string where OpenAI takes "a string or a list of them"
        if not isinstance(value, list):
            raise _type_error(param, "an array", value)
        for i, item in enumerate(value):
            item_param = f"{param}[{i}]"
            if field.type == F.TYPE_MESSAGE:
                _fill(container.add(), item, item_param)
            else:
                container.append(_scalar(field, item, item_param))
    elif field.type == F.TYPE_MESSAGE:
        sub = getattr(message, field.name)
        _fill(sub, value, param)
        sub.SetInParent()
    else:
        setattr(message, field.name, _scalar(field, value, param))


def _fill_map(container, entry: Descriptor, value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    value_field = entry.fields_by_name["value"]
    for key, item in value.items():
        item_param = f"{param}.{key}"
        if value_field.type == F.TYPE_MESSAGE:
            _fill(container[key], item, item_param)
        else:
            container[key] = _scalar(value_field, item, item_param)


def _scalar(field: FieldDescriptor, value: Any, param: str) -> Any:
    kind = field.type
    if kind == F.TYPE_ENUM:
        return enum_from_json(field.enum_type, value, param)
    if kind == F.TYPE_STRING:
        if not isinstance(value, str):
            raise _type_error(param, "a string", value)
        return value
    if kind == F.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _type_error(param, "a boolean", value)
        return value
    if kind in _INTEGERS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(param, "an integer", value)
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            raise CodecError(f"Invalid '{param}': integer out of range.", param, "integer_out_of_range")
        return value
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(param, "a decimal", value)
        return float(value)
    raise _type_error(param, _expected(field), value)


def query_to_json(query: Mapping[str, str], cls: type[Message]) -> dict[str, Any]:
    """Query parameters (`limit=20`, `include[]=a`) as the JSON types the request message wants."""
    fields = cls.DESCRIPTOR.fields_by_name
    data: dict[str, Any] = {}
    for raw_key, value in query.items():
        key = raw_key.removesuffix("[]")
        field = fields.get(key)
        if field is None:
            raise CodecError(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
        if field.is_repeated:
            data.setdefault(key, []).append(value)
        elif field.type in _INTEGERS:
            try:
                data[key] = int(value)
            except ValueError:
                raise _type_error(key, "an integer", value) from None
        elif field.type == F.TYPE_BOOL:
            if value not in ("true", "false"):
                raise _type_error(key, "a boolean", value)
            data[key] = value == "true"
        else:
            data[key] = value
    return data


# ---------------------------------------------------------------- protobuf -> JSON


# How render() writes one field of a message: what it needs to know of the field, looked up once
# per message type (descriptor attribute reads cost more than the rendering itself).
_TAG_MEMBER, _REPEATED, _MAP, _OPTIONAL, _PLAIN = range(5)


@functools.cache
def _field_plan(descriptor: Descriptor) -> tuple[tuple[str, int, FieldDescriptor, Any], ...]:
    """(name, how, the field (or the map's value field), whether a kind member is written) for
    each field render() may write, in declaration order."""
    # left out: input-only fields, and fields only the Responses API sets
    input_only = _INPUT_ONLY.get(descriptor.full_name, frozenset()) | _NOT_ASSISTANTS.get(
        descriptor.full_name, frozenset()
    )
    plan = []
    for field in descriptor.fields:
        if field.name in input_only:
            continue
        oneof = field.containing_oneof
        if oneof is not None and oneof.name == TYPE_TAG:
            # a member that is an empty message writes no field of its own, only the type
            written = not (field.type == F.TYPE_MESSAGE and not field.message_type.fields)
            plan.append((field.name, _TAG_MEMBER, field, written))
        elif field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                plan.append((field.name, _MAP, field.message_type.fields_by_name["value"], None))
            else:
                plan.append((field.name, _REPEATED, field, None))
        elif field.has_presence:
            plan.append((field.name, _OPTIONAL, field, None))
        else:
            plan.append((field.name, _PLAIN, field, None))
    return tuple(plan)


def render(message: Message, *, delta: bool = False) -> Any:
    """OpenAI JSON for a message. With delta=True, unset and empty fields are left out,
    as stream deltas must only carry what changed."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == _STRUCT:
        return struct_to_python(message)
    if descriptor.full_name == _VALUE:
        return json_format.MessageToDict(message)
    if is_json_list(descriptor):
        (items,) = descriptor.fields
        return [_render_value(items, item, delta) for item in getattr(message, items.name)]
    inline = _inline(descriptor)
    if inline is not None:
        which = message.WhichOneof(inline.name)
        if not which:
            return {}
        member = getattr(message, which)
        if _named_by_member(inline):  # the member's name is the `type`
            return {"type": which, **render(member, delta=delta)}
        return render(member, delta=delta)
    kind = message.WhichOneof(TYPE_TAG) if TYPE_TAG in descriptor.oneofs_by_name else None
    if kind is not None and kind in _AS_STRING.get(descriptor.full_name, ()):
        return kind
    out: dict[str, Any] = {}
    if kind is not None:
        out["type"] = kind
    for name, how, field, written in _field_plan(descriptor):
        if how == _TAG_MEMBER:
            if name == kind and written:
                out[name] = _render_value(field, getattr(message, name), delta)
            continue
        if how == _OPTIONAL and not message.HasField(name):
            if not delta:
                out[name] = None
            continue
        value = getattr(message, name)
        if how == _REPEATED:
            if not (delta and not value):
                out[name] = [_render_value(field, item, delta) for item in value]
        elif how == _MAP:
            if not (delta and not value):
                out[name] = {k: _render_value(field, v, delta) for k, v in value.items()}
        else:
            rendered = _render_value(field, value, delta)
            if not (delta and rendered is None):
                out[name] = rendered
    return out


def _render_value(field: FieldDescriptor, value: Any, delta: bool) -> Any:
    if field.type == F.TYPE_MESSAGE:
        return render(value, delta=delta)
    if field.type == F.TYPE_ENUM:
        return enum_to_json(field.enum_type, value)
    return value
