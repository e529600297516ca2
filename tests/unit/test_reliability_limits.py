"""The input limits every request obeys (service/validation.py), the list page byte budget
(service/api/common.py) and the cut-short errors (service/errors.py)."""

import pytest
from assistd.v1 import assistant_pb2
from google.protobuf import struct_pb2

from service.api import common
from service.errors import InvalidArgument, to_rpc_error
from service.validation import MAX_JSON_DEPTH, MAX_STRUCT_DEPTH, check_json, check_request, quoted


def _param(call) -> str | None:
    with pytest.raises(InvalidArgument) as info:
        call()
    return info.value.param


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_json_must_be_finite_valid_unicode_and_not_too_deep():
    check_json({"a": [1, 2.5, "x", None, True, _nested(MAX_JSON_DEPTH - 2)]})  # 32 levels in all
    assert _param(lambda: check_json({"t": float("inf")})) == "t"
    assert _param(lambda: check_json({"t": [float("nan")]})) == "t[0]"
    assert _param(lambda: check_json({"n": "ok\ud800"})) == "n"
    assert _param(lambda: check_json({"m": {"\udfff": 1}})) == "m"
    assert _param(lambda: check_json({"x": _nested(MAX_JSON_DEPTH)})) is not None


def _assistant_with_schema(parameters: struct_pb2.Struct) -> assistant_pb2.CreateAssistantRequest:
    tool = assistant_pb2.Tool(function=assistant_pb2.FunctionDefinition(name="f", parameters=parameters))
    return assistant_pb2.CreateAssistantRequest(model="m", tools=[tool])


def test_every_request_refuses_non_finite_numbers_and_deep_structs():
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"x": {"type": "number", "maximum": 5}}})
    check_request(_assistant_with_schema(schema))
    schema["properties"]["x"]["maximum"] = float("inf")
    assert _param(lambda: check_request(_assistant_with_schema(schema))) == (
        "tools[0].function.parameters.properties.x.maximum"
    )
    deep = struct_pb2.Struct()
    deep.update(_nested(MAX_STRUCT_DEPTH + 1))
    assert _param(lambda: check_request(_assistant_with_schema(deep))).startswith("tools[0].function.parameters")
    shallow = struct_pb2.Struct()
    shallow.update(_nested(MAX_STRUCT_DEPTH))
    check_request(_assistant_with_schema(shallow))
    assert _param(lambda: check_request(assistant_pb2.CreateAssistantRequest(model="m", temperature=float("nan")))) == (
        "temperature"
    )


def test_strings_have_limits_even_where_no_resource_rule_names_them():
    assert _param(lambda: check_request(assistant_pb2.CreateAssistantRequest(model="m" * 257))) == "model"
    check_request(assistant_pb2.CreateAssistantRequest(model="m" * 256))
    assert _param(lambda: check_request(assistant_pb2.GetAssistantRequest(assistant_id="a" * 257))) == "assistant_id"
    assert _param(lambda: check_request(assistant_pb2.ListAssistantsRequest(after="a" * 257))) == "after"


def test_quoted_values_are_short_and_errors_fit_in_grpc_metadata():
    assert quoted("yaml") == "'yaml'"
    assert len(quoted("x" * 1_000_000)) < 100
    error = to_rpc_error(InvalidArgument("m" * 1_000_000, param="p" * 1_000_000))
    assert sum(len(value) for _, value in error.trailing_metadata()) + len(error.message) < 16 * 1024


def test_a_list_page_stops_at_its_byte_budget_and_says_there_is_more(monkeypatch):
    monkeypatch.setattr(common, "PAGE_BYTES", 3000)
    items = [assistant_pb2.Assistant(id=f"asst_{i}", instructions="i" * 1000) for i in range(10)]
    response = common.page(assistant_pb2.ListAssistantsResponse(), items, False)
    assert 1 < len(response.data) < 10 and response.has_more
    assert response.last_id == response.data[-1].id
    one = common.page(assistant_pb2.ListAssistantsResponse(), [assistant_pb2.Assistant(instructions="i" * 9000)], False)
    assert len(one.data) == 1 and not one.has_more  # one object is always shown, whatever its size
    small = common.page(assistant_pb2.ListAssistantsResponse(), items[:2], False)
    assert len(small.data) == 2 and not small.has_more
