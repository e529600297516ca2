"""JSON <-> protobuf rules of the edge."""

import pytest
from assistd.v1 import assistant_pb2, message_pb2, run_pb2, run_service_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

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
        run_service_pb2.CreateRunRequest,
    )
    assert run.tool_choice.WhichOneof("kind") == "required" and run.response_format.WhichOneof("kind") == "auto"
    rendered = render(run)
    assert rendered["tool_choice"] == "required" and rendered["response_format"] == "auto"
    named = parse({"tool_choice": {"type": "function", "function": {"name": "f"}}}, run_service_pb2.CreateRunRequest)
    assert render(named)["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    with pytest.raises(CodecError) as info:
        parse({"tool_choice": "web_search"}, run_service_pb2.CreateRunRequest)
    assert info.value.param == "tool_choice.type" and (
        "'none', 'auto', 'required', 'function', 'file_search', 'code_interpreter'" in info.value.message
    )
    forced = parse({"tool_choice": {"type": "code_interpreter"}}, run_service_pb2.CreateRunRequest)
    assert render(forced)["tool_choice"] == {"type": "code_interpreter"}


def test_an_update_body_fills_the_resource_and_names_the_mask():
    update = parse(
        {"assistant_id": "asst_1", "name": "n", "tools": [], "metadata": {"k": "v"}, "instructions": None},
        assistant_pb2.UpdateAssistantRequest,
    )
    assert update.assistant_id == "asst_1" and update.assistant.name == "n" and update.assistant.metadata == {"k": "v"}
    assert sorted(update.update_mask.paths) == ["metadata", "name", "tools"]  # null is not a change
    assert list(parse({"assistant_id": "a"}, assistant_pb2.UpdateAssistantRequest).update_mask.paths) == []
    for key in ("update_mask", "assistant", "bogus"):
        with pytest.raises(CodecError) as info:
            parse({"assistant_id": "a", key: {}}, assistant_pb2.UpdateAssistantRequest)
        assert info.value.param == key and "Unknown parameter" in info.value.message
    files = parse(
        {"vector_store_id": "vs_1", "file_id": "file-1", "attributes": {"year": 2024}},
        vs_pb2.UpdateVectorStoreFileRequest,
    )
    assert (files.vector_store_id, files.file_id, list(files.update_mask.paths)) == ("vs_1", "file-1", ["attributes"])


def test_a_list_wrapper_is_a_json_list_with_presence():
    given = parse({"tools": []}, run_service_pb2.CreateRunRequest)
    assert given.HasField("tools") and list(given.tools.items) == []
    assert not parse({}, run_service_pb2.CreateRunRequest).HasField("tools")
    one = parse({"tools": [{"type": "file_search"}]}, run_service_pb2.CreateRunRequest)
    assert render(one)["tools"] == [
        {"type": "file_search", "file_search": {"max_num_results": None, "ranking_options": None}}
    ]
    with pytest.raises(CodecError) as info:
        parse({"tools": {"type": "file_search"}}, run_service_pb2.CreateRunRequest)
    assert info.value.param == "tools" and "expected an array" in info.value.message
    step = run_pb2.RunStep(id="step_1")
    step.step_details.tool_calls.items.add(id="call_1").function.name = "f"
    assert render(step)["step_details"] == {
        "type": "tool_calls",
        "tool_calls": [
            {"type": "function", "id": "call_1", "function": {"name": "f", "arguments": "", "output": None}}
        ],
    }


def test_an_inline_oneof_reads_and_writes_the_member_flat():
    body = {
        "query": "q",
        "filters": {
            "type": "and",
            "filters": [{"type": "eq", "key": "year", "value": 2024}, {"type": "in", "key": "k", "value": ["a"]}],
        },
    }
    search = parse(body, vs_pb2.SearchVectorStoreRequest)
    compound = search.filters.compound
    assert compound.type == vs_pb2.COMPOUND_OPERATOR_AND
    assert compound.filters[0].comparison.type == vs_pb2.COMPARISON_OPERATOR_EQ
    assert compound.filters[0].comparison.key == "year"
    assert render(search.filters) == body["filters"]
    with pytest.raises(CodecError) as info:
        parse({"filters": {"type": "xor"}}, vs_pb2.SearchVectorStoreRequest)
    assert info.value.param == "filters.type"
    assert "'eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'and', 'or'" in info.value.message
    with pytest.raises(CodecError) as info:
        parse({"filters": {"type": "eq", "filters": []}}, vs_pb2.SearchVectorStoreRequest)
    assert info.value.param == "filters.filters" and "Unknown parameter" in info.value.message
    with pytest.raises(CodecError) as info:
        parse({"filters": {"key": "k"}}, vs_pb2.SearchVectorStoreRequest)
    assert info.value.param == "filters.type" and "Missing required parameter" in info.value.message


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
        parse({"order": "sideways"}, run_service_pb2.ListRunsRequest)
    assert "'asc', 'desc'" in info.value.message
    with pytest.raises(CodecError) as info:
        parse({"order": "ASC"}, run_service_pb2.ListRunsRequest)  # the JSON names only
    assert info.value.code == "invalid_value"
    include = "step_details.tool_calls[*].file_search.results[*].content"
    query = query_to_json({"limit": "5", "order": "asc", "include[]": include}, run_service_pb2.ListRunStepsRequest)
    assert query == {"limit": 5, "order": "asc", "include": [include]}
    steps = parse(query, run_service_pb2.ListRunStepsRequest)
    assert list(steps.include) == [run_pb2.RUN_STEP_INCLUDE_FILE_SEARCH_RESULT_CONTENT]
    with pytest.raises(CodecError) as info:
        query_to_json({"limit": "many"}, run_service_pb2.ListRunsRequest)
    assert info.value.param == "limit"


def test_json_value_spells_what_a_suffix_cannot():
    search = parse({"query": "q", "ranking_options": {"ranker": "default-2024-11-15"}}, vs_pb2.SearchVectorStoreRequest)
    assert search.ranking_options.ranker == vs_pb2.SEARCH_RANKER_DEFAULT_2024_11_15
    assert render(search.ranking_options)["ranker"] == "default-2024-11-15"
    with pytest.raises(CodecError) as info:
        parse({"query": "q", "ranking_options": {"ranker": "default_2024_11_15"}}, vs_pb2.SearchVectorStoreRequest)
    assert "'none', 'auto', 'default-2024-11-15'" in info.value.message


def test_a_tag_selects_one_member_and_empty_members_are_just_their_type():
    step = run_pb2.RunStep(id="step_1")
    step.step_details.message_creation.message_id = "msg_1"
    assert render(step)["step_details"] == {"type": "message_creation", "message_creation": {"message_id": "msg_1"}}
    run = parse(
        {"response_format": {"type": "json_object"}, "tool_choice": {"type": "file_search"}},
        run_service_pb2.CreateRunRequest,
    )
    rendered = render(run)
    assert rendered["response_format"] == {"type": "json_object"} and rendered["tool_choice"] == {"type": "file_search"}
    chunking = parse({"chunking_strategy": {"type": "auto"}}, vs_pb2.CreateVectorStoreRequest).chunking_strategy
    assert chunking.WhichOneof("kind") == "auto"
    with pytest.raises(CodecError) as info:
        parse({"chunking_strategy": {"type": "other"}}, vs_pb2.CreateVectorStoreRequest)
    assert "'auto', 'static'" in info.value.message
