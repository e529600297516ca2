"""Request validation, the same for a gRPC client and for JSON through the HTTP edge.

The edge only transcodes (it refuses what does not fit the proto: wrong JSON types, unknown
fields, unknown enum names), so every rule of the API lives here, in two layers:

- `check_request`: the rules that hold for any request, driven by the descriptors and the tables
  below. The servicer decorators (service/api/common.py) run it on every request before the
  method, so nothing is stored from a refused request. It refuses
  * enum numbers the enum does not define (proto3 enums are open: an unknown number arrives as
    is, so a gRPC client can send `reasoning_effort: 99`),
  * a `kind` oneof (OpenAI's `type` tag) or a `(json_inline)` oneof left empty: `{"type": ...}`
    is required,
  * an unset enum where OpenAI has no default (REQUIRED),
  * an update mask naming a field the update cannot change (UPDATABLE).
- field checks that depend on the call (lengths, ranges, counts, metadata, name patterns), which
  the servicers call: check_assistant, check_run, check_message, check_search, ...

Every refusal is InvalidArgument naming the parameter as the JSON body spells it
(`messages[0].role`, `tools[1].type`): the resource of an update request and `(json_list)`
wrappers are transparent, as they are in JSON.
"""

import math
import re
from collections.abc import Callable
from typing import Any

from assistd.v1 import (
    assistant_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    run_service_pb2,
    thread_pb2,
)
from assistd.v1 import vector_store_pb2 as vs_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from service.errors import InvalidArgument, missing
from service.protojson import enum_names, is_json_inline, is_json_list, struct_to_python
from service.protojson import update_resource as _update_resource


def _field(cls: type[Message], name: str) -> tuple[str, str]:
    """(message full name, field name), checked against the descriptor so a typo fails at import."""
    assert name in cls.DESCRIPTOR.fields_by_name, f"{cls.DESCRIPTOR.full_name} has no field {name}"
    return cls.DESCRIPTOR.full_name, name


# Enum fields that must be given whenever their object is (OpenAI has no default for them).
REQUIRED: frozenset[tuple[str, str]] = frozenset(
    {
        _field(run_pb2.TruncationStrategy, "type"),
        _field(vs_pb2.ExpiresAfter, "anchor"),
        _field(vs_pb2.ComparisonFilter, "type"),
        _field(vs_pb2.CompoundFilter, "type"),
    }
)
# What each update request's mask may name (the fields OpenAI's update body takes).
UPDATABLE: dict[str, frozenset[str]] = {
    assistant_pb2.UpdateAssistantRequest.DESCRIPTOR.full_name: frozenset(
        {
            "model",
            "name",
            "description",
            "instructions",
            "tools",
            "tool_resources",
            "metadata",
            "temperature",
            "top_p",
            "response_format",
            "reasoning_effort",
        }
    ),
    thread_pb2.UpdateThreadRequest.DESCRIPTOR.full_name: frozenset({"metadata", "tool_resources"}),
    message_pb2.UpdateMessageRequest.DESCRIPTOR.full_name: frozenset({"metadata"}),
    run_service_pb2.UpdateRunRequest.DESCRIPTOR.full_name: frozenset({"metadata"}),
    vs_pb2.UpdateVectorStoreRequest.DESCRIPTOR.full_name: frozenset({"name", "expires_after", "metadata"}),
    vs_pb2.UpdateVectorStoreFileRequest.DESCRIPTOR.full_name: frozenset({"attributes"}),
}
UPDATE_MASK = "update_mask"
_TYPE_TAG = "kind"  # the oneof that is OpenAI's `type`
_FREE_FORM = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


# ---------------------------------------------------------------- limits every request obeys
# (the edge applies the JSON ones to a body before it becomes a message: service/validation is
# the one place these rules live)

MAX_JSON_DEPTH = 32  # nesting of a JSON body (objects and arrays)
MAX_STRUCT_DEPTH = 24  # nesting of a free-form object (a JSON schema, a Struct) anywhere in a request
MAX_STRING = 1_048_576  # characters, for a string with no tighter limit
MAX_ID = 256  # an id, or a list cursor
MAX_QUOTED = 64  # characters of a caller's value quoted back in an error message
# Tighter limits by field name, wherever the field is (the per-resource checks below add OpenAI's
# own: name 256, description 512, instructions 256,000 characters, ...).
STRING_LIMITS: dict[str, int] = {
    "model": 256,  # a model name or alias
    "additional_instructions": 256_000,
    "after": MAX_ID,
    "before": MAX_ID,
}


def quoted(value: Any) -> str:
    """repr() of a caller's value, cut short: error messages travel in gRPC metadata (16 KiB)."""
    if isinstance(value, str) and len(value) > MAX_QUOTED:
        return repr(value[:MAX_QUOTED]) + f"... ({len(value)} characters)"
    return repr(value) if isinstance(value, str) else str(value)[:MAX_QUOTED]


def _string_limit(name: str) -> int:
    if name in STRING_LIMITS:
        return STRING_LIMITS[name]
    return MAX_ID if name.endswith("_id") or name.endswith("_ids") else MAX_STRING


def check_json(value: Any, param: str = "", depth: int = 0, max_depth: int = MAX_JSON_DEPTH) -> None:
    """A parsed JSON value: nested at most max_depth deep, finite numbers, strings that are
    valid Unicode (no lone surrogates, which `\\ud800` escapes can make)."""
    if isinstance(value, str):
        _check_text(value, param)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(
                f"Invalid '{param}': numbers must be finite.", param=param or None, code="invalid_value"
            )
    elif isinstance(value, (dict, list)):
        if depth >= max_depth:
            raise InvalidArgument(
                f"Invalid '{param}': nested too deeply (at most {max_depth} levels).",
                param=param or None,
                code="nesting_too_deep",
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                _check_text(key, param)
                where = _join(param, key)
            else:
                where = f"{param}[{key}]"
            check_json(item, where, depth + 1, max_depth)


def _check_text(value: str, param: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"Invalid '{param}': the string is not valid Unicode (a lone surrogate).",
            param=param or None,
            code="invalid_value",
        ) from None


def _check_free_form(value: Message, param: str, depth: int = 0) -> None:
    """A Struct, Value or ListValue: nested at most MAX_STRUCT_DEPTH deep, finite numbers (a
    gRPC client can send Infinity; JSON could not render it back)."""
    name = value.DESCRIPTOR.full_name
    if name == "google.protobuf.Value":
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            raise InvalidArgument(f"Invalid '{param}': numbers must be finite.", param=param, code="invalid_value")
        if kind in ("struct_value", "list_value"):
            _check_free_form(getattr(value, kind), param, depth)
        return
    if depth >= MAX_STRUCT_DEPTH:
        raise InvalidArgument(
            f"Invalid '{param}': nested too deeply (at most {MAX_STRUCT_DEPTH} levels).",
            param=param,
            code="nesting_too_deep",
        )
    if name == "google.protobuf.Struct":
        for key, item in value.fields.items():
            _check_free_form(item, _join(param, key), depth + 1)
    else:
        for i, item in enumerate(value.values):
            _check_free_form(item, f"{param}[{i}]", depth + 1)


def supported(values) -> str:
    return ", ".join(repr(v) for v in values)


def invalid_value(value: Any, allowed, param: str) -> InvalidArgument:
    """OpenAI's wording: "Invalid value: 'yaml'. Supported values are: 'auto', 'text', ..."."""
    return InvalidArgument(
        f"Invalid value: {quoted(value)}. Supported values are: {supported(allowed)}.",
        param=param,
        code="invalid_value",
    )


def check_enum(value: int, enum: EnumDescriptor, param: str) -> None:
    """Refuses a number the enum does not define (0, "unspecified", is the caller's to judge)."""
    if value not in enum.values_by_number:
        raise invalid_value(value, enum_names(enum), param)


def unknown_parameter(param: str) -> InvalidArgument:
    return InvalidArgument(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


# ---------------------------------------------------------------- every request


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def update_resource(request: Message) -> Any:
    """The resource field of an update request (the one with an update mask); None for others."""
    return _update_resource(request.DESCRIPTOR)


class Undecodable:
    """A request whose bytes are no valid message (bad UTF-8 in a string, nested past protobuf's
    depth limit): handed to the servicer, which refuses it as INVALID_ARGUMENT, instead of gRPC
    answering UNKNOWN with the decoder's text."""


def tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A request deserializer that gives an Undecodable for bytes it cannot decode."""

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable()

    return decode


def check_request(request: Message | Undecodable) -> None:
    """The descriptor-driven rules above, over the whole request."""
    if isinstance(request, Undecodable):
        raise InvalidArgument(
            "The request is not a valid message: a string that is not UTF-8, or nesting deeper than 100 levels.",
            code="invalid_request",
        )
    resource = update_resource(request)
    if resource is not None:
        allowed = UPDATABLE[request.DESCRIPTOR.full_name]
        for path in getattr(request, UPDATE_MASK).paths:
            if path not in allowed:
                raise unknown_parameter(path)
    _check_message(request, "", transparent=resource.name if resource is not None else None)


def _required_oneofs(descriptor: Descriptor):
    for oneof in descriptor.oneofs:
        if oneof.name == _TYPE_TAG or is_json_inline(oneof):
            yield oneof


def _check_message(message: Message, path: str, transparent: str | None = None) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name in _FREE_FORM:
        _check_free_form(message, path)
        return
    for field in descriptor.fields:
        key = (descriptor.full_name, field.name)
        if key in REQUIRED and not getattr(message, field.name):
            raise missing(_join(path, field.name))
    for oneof in _required_oneofs(descriptor):
        if message.WhichOneof(oneof.name) is None:
            raise missing(_join(path, "type"))
    for field, value in message.ListFields():
        inline = field.containing_oneof is not None and is_json_inline(field.containing_oneof)
        param = path if field.name == transparent or inline else _join(path, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            key_field = field.message_type.fields_by_name["key"]
            for key, item in value.items():
                _check_value(key_field, key, param)
                _check_value(value_field, item, f"{param}.{key}")
        elif field.is_repeated:
            for i, item in enumerate(value):
                _check_value(field, item, f"{param}[{i}]")
        else:
            _check_value(field, value, param)


_DOUBLES = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def _check_value(field: FieldDescriptor, value: Any, param: str) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        check_length(value, _string_limit(field.name), param)
    elif field.type in _DOUBLES:
        if not math.isfinite(value):
            raise InvalidArgument(f"Invalid '{param}': numbers must be finite.", param=param, code="invalid_value")
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        if is_json_list(field.message_type):
            (items,) = field.message_type.fields
            for i, item in enumerate(getattr(value, items.name)):
                _check_value(items, item, f"{param}[{i}]")
        else:
            _check_message(value, param)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        check_enum(value, field.enum_type, param)


# ---------------------------------------------------------------- scalar rules


def check_length(value: str, limit: int, param: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )


def check_range(request: Message, field: str, low: float, high: float, param: str | None = None) -> None:
    """A number field, when given, within [low, high]."""
    if request.HasField(field):
        value = getattr(request, field)
        if not low <= value <= high:
            name = param or field
            raise InvalidArgument(
                f"Invalid '{name}': expected a value between {low:g} and {high:g}, but got {value:g} instead.",
                param=name,
                code="decimal_out_of_range" if isinstance(value, float) else "integer_out_of_range",
            )


def check_limit(request: Message, default: int = 20, maximum: int = 100) -> int:
    """A list call's page size (1..maximum)."""
    limit = request.limit if request.HasField("limit") else default
    if not 1 <= limit <= maximum:
        raise InvalidArgument(
            f"Invalid 'limit': expected a value between 1 and {maximum}, but got {limit} instead.",
            param="limit",
            code="integer_out_of_range",
        )
    return limit


def check_metadata(metadata, param: str = "metadata") -> None:
    """OpenAI's metadata limits: at most 16 pairs, keys up to 64 and values up to 512 characters."""
    if len(metadata) > 16:
        raise InvalidArgument(f"Invalid '{param}': too many properties. Expected at most 16.", param=param)
    for key, value in metadata.items():
        if len(key) > 64:
            raise InvalidArgument(f"Invalid '{param}': keys can be at most 64 characters long.", param=param)
        if len(value) > 512:
            raise InvalidArgument(f"Invalid '{param}': values can be at most 512 characters long.", param=param)


_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check_tools(tools, param: str = "tools") -> None:
    if len(tools) > 128:
        raise InvalidArgument(f"Invalid '{param}': at most 128 tools are allowed.", param=param)
    for i, tool in enumerate(tools):
        kind = tool.WhichOneof("kind")
        if kind is None:
            raise missing(f"{param}[{i}].type")
        if kind == "function" and not _FUNCTION_NAME.match(tool.function.name):
            raise InvalidArgument(
                f"Invalid '{param}[{i}].function.name': must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'.",
                param=f"{param}[{i}].function.name",
                code="invalid_value",
            )
        if kind == "file_search":
            check_range(tool.file_search, "max_num_results", 1, 50, f"{param}[{i}].file_search.max_num_results")
            options = tool.file_search.ranking_options
            if not 0 <= options.score_threshold <= 1:
                where = f"{param}[{i}].file_search.ranking_options.score_threshold"
                raise InvalidArgument(
                    f"Invalid '{where}': expected a value between 0 and 1.", param=where, code="decimal_out_of_range"
                )


def check_response_format(request: Message) -> None:
    """A json_schema format names its schema (OpenAI requires `json_schema.name`)."""
    if request.HasField("response_format"):
        response_format = request.response_format
        if response_format.WhichOneof("kind") == "json_schema" and not response_format.json_schema.name:
            raise missing("response_format.json_schema.name")


# ---------------------------------------------------------------- per resource


def check_assistant(request: assistant_pb2.CreateAssistantRequest | assistant_pb2.Assistant) -> None:
    """A create request, or the new values of an update (the fields they share mean the same)."""
    if request.HasField("name"):
        check_length(request.name, 256, "name")
    if request.HasField("description"):
        check_length(request.description, 512, "description")
    if request.HasField("instructions"):
        check_length(request.instructions, 256_000, "instructions")
    check_range(request, "temperature", 0, 2)
    check_range(request, "top_p", 0, 1)
    check_tools(request.tools)
    check_metadata(request.metadata)
    check_response_format(request)


_MAX_TEXT = 256_000


def check_message(params: message_pb2.NewMessage | message_pb2.CreateMessageRequest, param: str = "") -> None:
    """A message a user writes (NewMessage or CreateMessageRequest fields); `param` is where it
    sits in the request (e.g. "messages[0]")."""
    prefix = f"{param}." if param else ""
    if params.role == message_pb2.MESSAGE_ROLE_UNSPECIFIED:
        raise missing(f"{prefix}role")
    check_enum(params.role, message_pb2.MessageRole.DESCRIPTOR, f"{prefix}role")
    if not params.content:
        raise missing(f"{prefix}content")
    for i, part in enumerate(params.content):
        kind = part.WhichOneof("kind")
        if kind is None:
            raise missing(f"{prefix}content[{i}].type")
        if kind == "text":
            check_length(part.text.value, _MAX_TEXT, f"{prefix}content[{i}].text")
            if part.text.annotations:
                raise InvalidArgument("Annotations cannot be set on a new message.", param=f"{prefix}content[{i}].text")
    check_metadata(params.metadata, f"{prefix}metadata")


def check_run(request: run_service_pb2.CreateRunRequest | run_service_pb2.CreateThreadAndRunRequest) -> None:
    if not request.assistant_id:
        raise missing("assistant_id")
    check_range(request, "temperature", 0, 2)
    check_range(request, "top_p", 0, 1)
    for field in ("max_prompt_tokens", "max_completion_tokens"):
        if request.HasField(field) and getattr(request, field) < 256:
            raise InvalidArgument(
                f"Invalid '{field}': expected a value >= 256, but got {getattr(request, field)} instead.",
                param=field,
                code="integer_below_min_value",
            )
    if request.HasField("tools"):
        check_tools(request.tools.items)
    check_metadata(request.metadata)
    check_response_format(request)
    if request.HasField("truncation_strategy"):
        strategy = request.truncation_strategy
        if strategy.type == run_pb2.TRUNCATION_STRATEGY_TYPE_DISABLED:  # the Responses API's alone
            raise InvalidArgument(
                "Invalid value for 'truncation_strategy.type': expected 'auto' or 'last_messages'.",
                param="truncation_strategy.type",
                code="invalid_value",
            )
        if strategy.HasField("last_messages") and strategy.last_messages < 1:
            raise InvalidArgument(
                "Invalid 'truncation_strategy.last_messages': expected a value >= 1.",
                param="truncation_strategy.last_messages",
                code="integer_below_min_value",
            )
    if request.tool_choice.WhichOneof("kind") == "function" and not request.tool_choice.function.name:
        raise missing("tool_choice.function.name")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_filename(name: str) -> None:
    """A file name as it will be shown and sent back: printable, at most 255 characters."""
    check_length(name, 255, "file")
    if _CONTROL.search(name):
        raise InvalidArgument(
            "Invalid 'file': the file name must not contain control characters.", param="file", code="invalid_value"
        )


def check_upload(file: file_pb2.File, expires_after: int | None) -> None:
    """An upload once all its parts have arrived."""
    if not file.purpose:
        raise missing("purpose")
    if file.purpose == file_pb2.FILE_PURPOSE_ASSISTANTS_OUTPUT:
        raise InvalidArgument(
            "Invalid value for 'purpose': 'assistants_output' is for files assistants make.",
            param="purpose",
            code="invalid_value",
        )
    if not file.filename:
        raise missing("file")
    if file.bytes == 0:
        raise InvalidArgument("The file is empty.", param="file", code="empty_file")
    if expires_after is not None and not 3600 <= expires_after <= 30 * 24 * 3600:
        raise InvalidArgument(
            "Invalid 'expires_after[seconds]': expected a value between 3600 and 2592000.",
            param="expires_after[seconds]",
            code="integer_out_of_range",
        )


# ---------------------------------------------------------------- vector stores


def check_expires_after(request: Message) -> None:
    if request.HasField("expires_after"):
        days = request.expires_after.days
        if not 1 <= days <= 365:
            raise InvalidArgument(
                f"Invalid 'expires_after.days': expected a value between 1 and 365, but got {days} instead.",
                param="expires_after.days",
                code="integer_out_of_range",
            )


def check_chunking_strategy(strategy: vs_pb2.ChunkingStrategyParam, param: str = "chunking_strategy") -> None:
    """`auto` takes the defaults; `static` sizes as OpenAI bounds them."""
    if strategy.WhichOneof("kind") != "static":
        return
    size, overlap = strategy.static.max_chunk_size_tokens, strategy.static.chunk_overlap_tokens
    if not 100 <= size <= 4096:
        raise InvalidArgument(
            f"Invalid '{param}.static.max_chunk_size_tokens': expected a value between 100 and 4096, but got {size}.",
            param=f"{param}.static.max_chunk_size_tokens",
            code="integer_out_of_range",
        )
    if overlap < 0 or overlap > size // 2:
        raise InvalidArgument(
            f"Invalid '{param}.static.chunk_overlap_tokens': must be between 0 and half of max_chunk_size_tokens "
            f"({size // 2}), but got {overlap}.",
            param=f"{param}.static.chunk_overlap_tokens",
            code="integer_out_of_range",
        )


def check_attributes(attributes, param: str = "attributes") -> None:
    """At most 16 attributes; keys up to 64 characters; values strings (up to 512), numbers or booleans."""
    values = struct_to_python(attributes)
    if len(values) > 16:
        raise InvalidArgument(f"Invalid '{param}': at most 16 attributes are allowed.", param=param)
    for key, value in values.items():
        check_length(key, 64, f"{param}.{key}")
        if isinstance(value, str):
            check_length(value, 512, f"{param}.{key}")
        elif not isinstance(value, (bool, int, float)):
            raise InvalidArgument(
                f"Invalid '{param}.{key}': expected a string, number or boolean.", param=f"{param}.{key}"
            )


def check_filter(flt: vs_pb2.AttributeFilter, param: str = "filters") -> None:
    """A comparison names a key and a value; a compound holds filters, each checked the same way.
    (Which kind it is and its `type` are checked with every request.)"""
    if flt.WhichOneof("filter") == "compound":
        if not flt.compound.filters:
            raise missing(f"{param}.filters")
        for i, inner in enumerate(flt.compound.filters):
            check_filter(inner, f"{param}.filters[{i}]")
        return
    if not flt.comparison.key:
        raise missing(f"{param}.key")
    if not flt.comparison.HasField("value"):
        raise missing(f"{param}.value")


def check_search(request: vs_pb2.SearchVectorStoreRequest) -> tuple[list[str], int, float]:
    """(non-blank queries, result limit, score threshold) of a search request."""
    queries = [q for q in request.query if q.strip()]
    if not queries:
        raise missing("query")
    limit = request.max_num_results if request.HasField("max_num_results") else 10
    if not 1 <= limit <= 50:
        raise InvalidArgument(
            f"Invalid 'max_num_results': expected a value between 1 and 50, but got {limit}.",
            param="max_num_results",
            code="integer_out_of_range",
        )
    options = request.ranking_options
    threshold = options.score_threshold if options.HasField("score_threshold") else 0.0
    if not 0 <= threshold <= 1:
        raise InvalidArgument(
            "Invalid 'ranking_options.score_threshold': expected a value between 0 and 1.",
            param="ranking_options.score_threshold",
            code="decimal_out_of_range",
        )
    if request.HasField("filters"):
        check_filter(request.filters)
    return queries, limit, threshold


def check_file_batch(request: vs_pb2.CreateFileBatchRequest) -> None:
    if bool(request.file_ids) == bool(request.files):
        raise InvalidArgument("Give exactly one of 'file_ids' and 'files'.", param="file_ids")
    if len(request.file_ids) + len(request.files) > 500:
        raise InvalidArgument("A batch holds at most 500 files.", param="file_ids" if request.file_ids else "files")
