"""JSON <-> protobuf rules of the edge."""

import pytest
from assistd.v1 import assistant_pb2, message_pb2, run_pb2

from edge.codec import CodecError, enum_to_json, parse, query_to_json, render


def test_tagged_union_round_trips_with_type():
    body = {
        "model": "m",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
                },
            },
            {"type": "code_interpreter"},
            {"type": "file_search", "file_search": {"max_num_results": 5}},
        ],
    }
    request = parse(body, assistant_pb2.CreateAssistantRequest)
    tools = render(request)["tools"]
    assert tools[0] == {
        "type": "function",
        "function": {
            "name": "f",
            "description": None,
            "parameters": body["tools"][0]["function"]["parameters"],
            "strict": None,
        },
    }
    assert tools[1] == {"type": "code_interpreter"}
    assert tools[2]["file_search"]["max_num_results"] == 5


def test_struct_numbers_stay_integers():
    request = parse(
        {
            "model": "m",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"maxItems": 2, "x": 1.5}}}],
        },
        assistant_pb2.CreateAssistantRequest,
    )
    params = render(request)["tools"][0]["function"]["parameters"]
    assert params == {"maxItems": 2, "x": 1.5} and isinstance(params["maxItems"], int)


def test_shorthands():
    message = parse({"thread_id": "t", "role": "user", "content": "hi"}, message_pb2.CreateMessageRequest)
    assert message.content[0].text.value == "hi"
    parts = parse(
        {"thread_id": "t", "role": "user", "content": [{"type": "text", "text": "a"}]}, message_pb2.CreateMessageRequest
    )
    assert parts.content[0].text.value == "a"
    run = parse(
        {"thread_id": "t", "assistant_id": "a", "tool_choice": "required", "response_format": "auto"},
        run_pb2.CreateRunRequest,
    )
    assert run.tool_choice.type == "required" and run.response_format.type == "auto"
    rendered = render(run)
    assert rendered["tool_choice"] == "required" and rendered["response_format"] == "auto"
    named = parse({"tool_choice": {"type": "function", "function": {"name": "f"}}}, run_pb2.CreateRunRequest)
    assert render(named)["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_set_flags_follow_presence():
    assert parse({"assistant_id": "a", "tools": []}, assistant_pb2.UpdateAssistantRequest).set_tools
    assert not parse({"assistant_id": "a"}, assistant_pb2.UpdateAssistantRequest).set_tools
    with pytest.raises(CodecError):
        parse({"assistant_id": "a", "set_tools": True}, assistant_pb2.UpdateAssistantRequest)


def test_objects_write_null_and_deltas_leave_out_unset():
    run = run_pb2.Run(id="run_1", status=run_pb2.RUN_STATUS_IN_PROGRESS)
    out = render(run)
    assert out["status"] == "in_progress" and out["completed_at"] is None and out["last_error"] is None
    assert out["tools"] == [] and out["metadata"] == {}
    delta = message_pb2.MessageDeltaEvent(id="msg_1", object="thread.message.delta")
    delta.delta.content.add(index=0).text.value = "He"
    assert render(delta, delta=True) == {
        "id": "msg_1",
        "object": "thread.message.delta",
        "delta": {"content": [{"type": "text", "index": 0, "text": {"value": "He"}}]},
    }


@pytest.mark.parametrize(
    "body, param, fragment",
    [
        ({"model": 1}, "model", "expected a string, but got an integer"),
        ({"model": "m", "temperature": True}, "temperature", "expected a decimal, but got a boolean"),
        ({"model": "m", "tools": {}}, "tools", "expected an array"),
        ({"model": "m", "tools": [{}]}, "tools[0].type", "Missing required parameter"),
        (
            {"model": "m", "tools": [{"type": "function", "function": {"name": "f"}, "file_search": {}}]},
            "tools[0].file_search",
            "Unknown parameter",
        ),
        ({"model": "m", "metadata": {"a": None}}, "metadata.a", "expected a string, but got null"),
        ({"model": "m", "bogus": 1}, "bogus", "Unknown parameter"),
    ],
)
def test_bad_json_names_the_param(body, param, fragment):
    with pytest.raises(CodecError) as info:
        parse(body, assistant_pb2.CreateAssistantRequest)
    assert info.value.param == param and fragment in info.value.message


def test_enums_and_query_strings():
    assert enum_to_json(run_pb2.RunStatus.DESCRIPTOR, run_pb2.RUN_STATUS_REQUIRES_ACTION) == "requires_action"
    assert enum_to_json(run_pb2.RunStatus.DESCRIPTOR, 0) is None
    with pytest.raises(CodecError) as info:
        parse({"order": "sideways"}, run_pb2.ListRunsRequest)
    assert "'asc', 'desc'" in info.value.message
    query = query_to_json({"limit": "5", "order": "asc", "include[]": "x"}, run_pb2.ListRunStepsRequest)
    assert query == {"limit": 5, "order": "asc", "include": ["x"]}
    with pytest.raises(CodecError) as info:
        query_to_json({"limit": "many"}, run_pb2.ListRunsRequest)
    assert info.value.param == "limit"


def test_type_selects_which_sibling_is_written():
    step = run_pb2.RunStep(id="step_1")
    step.step_details.type = run_pb2.RUN_STEP_TYPE_MESSAGE_CREATION
    step.step_details.message_creation.message_id = "msg_1"
    assert render(step)["step_details"] == {"type": "message_creation", "message_creation": {"message_id": "msg_1"}}
    run = parse(
        {"response_format": {"type": "json_object"}, "tool_choice": {"type": "file_search"}}, run_pb2.CreateRunRequest
    )
    rendered = render(run)
    assert rendered["response_format"] == {"type": "json_object"} and rendered["tool_choice"] == {"type": "file_search"}
