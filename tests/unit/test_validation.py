"""Request validation (service/validation.py): every closed set, unknown enum numbers, empty
`type` oneofs, and the per-call checks. No server: the functions the servicers call."""

import pytest
from assistd.v1 import (
    assistant_pb2 as a,
)
from assistd.v1 import (
    common_pb2,
)
from assistd.v1 import (
    file_pb2 as f,
)
from assistd.v1 import (
    message_pb2 as m,
)
from assistd.v1 import (
    run_pb2 as r,
)
from assistd.v1 import (
    thread_pb2 as t,
)
from assistd.v1 import (
    vector_store_pb2 as vs,
)
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from service import validation as v
from service.errors import InvalidArgument


def _refused(call, param: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        call()
    assert info.value.param == param, info.value.message
    return info.value


def _user(**content) -> m.NewMessage:
    return m.NewMessage(role=m.MESSAGE_ROLE_USER, content=[m.MessageContent(**content)])


# (message, field) of CLOSED_SETS -> (a request carrying value there, the param it is named by)
CASES = {
    v._field(a.ResponseFormat, "type"): (
        lambda x: r.CreateRunRequest(assistant_id="a", response_format=a.ResponseFormat(type=x)),
        "response_format.type",
    ),
    v._field(a.CreateAssistantRequest, "reasoning_effort"): (
        lambda x: a.CreateAssistantRequest(model="m", reasoning_effort=x),
        "reasoning_effort",
    ),
    v._field(a.UpdateAssistantRequest, "reasoning_effort"): (
        lambda x: a.UpdateAssistantRequest(assistant_id="a", reasoning_effort=x),
        "reasoning_effort",
    ),
    v._field(r.CreateRunRequest, "reasoning_effort"): (
        lambda x: r.CreateRunRequest(assistant_id="a", reasoning_effort=x),
        "reasoning_effort",
    ),
    v._field(r.CreateThreadAndRunRequest, "reasoning_effort"): (
        lambda x: r.CreateThreadAndRunRequest(assistant_id="a", reasoning_effort=x),
        "reasoning_effort",
    ),
    v._field(r.TruncationStrategy, "type"): (
        lambda x: r.CreateRunRequest(truncation_strategy=r.TruncationStrategy(type=x)),
        "truncation_strategy.type",
    ),
    v._field(r.ToolChoice, "type"): (
        lambda x: r.CreateThreadAndRunRequest(tool_choice=r.ToolChoice(type=x)),
        "tool_choice.type",
    ),
    v._field(a.RankingOptions, "ranker"): (
        lambda x: a.CreateAssistantRequest(
            tools=[a.Tool(file_search=a.FileSearchTool(ranking_options=a.RankingOptions(ranker=x)))]
        ),
        "tools[0].file_search.ranking_options.ranker",
    ),
    v._field(vs.SearchRankingOptions, "ranker"): (
        lambda x: vs.SearchVectorStoreRequest(ranking_options=vs.SearchRankingOptions(ranker=x)),
        "ranking_options.ranker",
    ),
    v._field(vs.ChunkingStrategy, "type"): (
        lambda x: vs.CreateVectorStoreFileRequest(chunking_strategy=vs.ChunkingStrategy(type=x)),
        "chunking_strategy.type",
    ),
    v._field(vs.AttributeFilter, "type"): (
        lambda x: vs.SearchVectorStoreRequest(
            filters=vs.AttributeFilter(type="and", filters=[vs.AttributeFilter(type=x, key="k")])
        ),
        "filters.filters[0].type",
    ),
    v._field(vs.ExpiresAfter, "anchor"): (
        lambda x: vs.CreateVectorStoreRequest(expires_after=vs.ExpiresAfter(anchor=x, days=1)),
        "expires_after.anchor",
    ),
    v._field(f.UploadFileRequest, "purpose"): (lambda x: f.UploadFileRequest(purpose=x), "purpose"),
    v._field(f.ListFilesRequest, "purpose"): (lambda x: f.ListFilesRequest(purpose=x), "purpose"),
    v._field(vs.ListVectorStoreFilesRequest, "filter"): (lambda x: vs.ListVectorStoreFilesRequest(filter=x), "filter"),
    v._field(vs.ListFileBatchFilesRequest, "filter"): (lambda x: vs.ListFileBatchFilesRequest(filter=x), "filter"),
    v._field(m.ImageFileContent, "detail"): (
        lambda x: t.CreateThreadRequest(messages=[_user(image_file=m.ImageFileContent(file_id="f", detail=x))]),
        "messages[0].content[0].image_file.detail",
    ),
    v._field(m.ImageUrlContent, "detail"): (
        lambda x: m.CreateMessageRequest(
            role=m.MESSAGE_ROLE_USER, content=[m.MessageContent(image_url=m.ImageUrlContent(url="u", detail=x))]
        ),
        "content[0].image_url.detail",
    ),
    v._field(r.CreateRunRequest, "include"): (lambda x: r.CreateRunRequest(include=[x]), "include[0]"),
    v._field(r.GetRunStepRequest, "include"): (lambda x: r.GetRunStepRequest(include=[x]), "include[0]"),
    v._field(r.ListRunStepsRequest, "include"): (lambda x: r.ListRunStepsRequest(include=[x]), "include[0]"),
}


def test_every_closed_set_has_a_case():
    assert set(CASES) == set(v.CLOSED_SETS)


@pytest.mark.parametrize("key", list(CASES), ids=lambda key: ".".join(key).removeprefix("assistd.v1."))
def test_each_closed_set_takes_its_values_and_refuses_others_naming_the_param(key):
    build, param = CASES[key]
    allowed = v.CLOSED_SETS[key]
    for value in allowed:
        v.check_request(build(value))
    error = _refused(lambda: v.check_request(build("bogus-value")), param)
    assert error.code == "invalid_value"
    assert error.message == f"Invalid value: 'bogus-value'. Supported values are: {v.supported(allowed)}."


def test_the_sets_are_openais():
    assert v.REASONING_EFFORTS == ("none", "minimal", "low", "medium", "high", "xhigh")
    assert v.RESPONSE_FORMAT_TYPES == ("auto", "text", "json_object", "json_schema")
    assert v.FILE_PURPOSES == ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def test_a_stream_request_is_checked_through_its_params_wrapper():
    params = r.CreateRunRequest(assistant_id="a", response_format=a.ResponseFormat(type="yaml"))
    _refused(lambda: v.check_request(r.CreateRunStreamRequest(params=params)), "response_format.type")


def _requests_with_enums():
    for module in (a, t, m, r, f, vs):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            if message.name.endswith("Request"):
                for field in message.fields:
                    if field.type == FieldDescriptor.TYPE_ENUM:
                        yield getattr(module, message.name), field.name


@pytest.mark.parametrize("cls, field", list(_requests_with_enums()), ids=lambda x: getattr(x, "__name__", x))
def test_an_unknown_number_in_any_request_enum_is_refused(cls, field):
    request = cls()
    setattr(request, field, 9)  # proto3 enums are open: 9 arrives as is
    error = _refused(lambda: v.check_request(request), field)
    assert error.message.startswith("Invalid value: 9. Supported values are: ")


def test_the_walk_above_finds_the_request_enums():
    lists = {
        "ListAssistantsRequest",
        "ListMessagesRequest",
        "ListRunsRequest",
        "ListRunStepsRequest",
        "ListFilesRequest",
        "ListVectorStoresRequest",
        "ListVectorStoreFilesRequest",
        "ListFileBatchFilesRequest",
    }
    found = {(cls.__name__, field) for cls, field in _requests_with_enums()}
    assert found == {("CreateMessageRequest", "role")} | {(name, "order") for name in lists}


def test_unknown_roles_are_refused_wherever_messages_are_written():
    bad = m.NewMessage(role=7, content=[m.MessageContent(text=m.TextContent(value="x"))])
    _refused(lambda: v.check_request(m.CreateMessageRequest(thread_id="t", role=7)), "role")
    _refused(lambda: v.check_request(t.CreateThreadRequest(messages=[bad])), "messages[0].role")
    _refused(lambda: v.check_request(r.CreateRunRequest(additional_messages=[bad])), "additional_messages[0].role")
    run = r.CreateThreadAndRunRequest(thread=r.ThreadParams(messages=[bad]))
    _refused(lambda: v.check_request(run), "thread.messages[0].role")
    error = _refused(lambda: v.check_enum(7, m.MessageRole.DESCRIPTOR, "role"), "role")
    assert error.message == "Invalid value: 7. Supported values are: 'user', 'assistant'."
    v.check_enum(m.MESSAGE_ROLE_ASSISTANT, m.MessageRole.DESCRIPTOR, "role")
    v.check_request(m.ListMessagesRequest(order=common_pb2.LIST_ORDER_ASC))


def test_an_empty_type_oneof_is_a_missing_type():
    _refused(lambda: v.check_request(a.CreateAssistantRequest(model="m", tools=[a.Tool()])), "tools[0].type")
    _refused(lambda: v.check_request(r.CreateRunRequest(set_tools=True, tools=[a.Tool()])), "tools[0].type")
    attachment = m.Attachment(file_id="file-1", tools=[m.AttachmentTool()])
    request = m.CreateMessageRequest(role=m.MESSAGE_ROLE_USER, attachments=[attachment])
    _refused(lambda: v.check_request(request), "attachments[0].tools[0].type")
    _refused(lambda: v.check_request(m.CreateMessageRequest(content=[m.MessageContent()])), "content[0].type")
    _refused(lambda: v.check_tools([a.Tool()]), "tools[0].type")
    v.check_request(a.CreateAssistantRequest(tools=[a.Tool(code_interpreter=a.CodeInterpreterTool())]))


def test_types_without_a_default_are_required():
    cases = [
        (r.CreateRunRequest(response_format=a.ResponseFormat()), "response_format.type"),
        (r.CreateRunRequest(truncation_strategy=r.TruncationStrategy()), "truncation_strategy.type"),
        (r.CreateRunRequest(tool_choice=r.ToolChoice()), "tool_choice.type"),
        (vs.SearchVectorStoreRequest(filters=vs.AttributeFilter(key="k")), "filters.type"),
        (vs.UpdateVectorStoreRequest(expires_after=vs.ExpiresAfter(days=3)), "expires_after.anchor"),
    ]
    for request, param in cases:
        assert _refused(lambda request=request: v.check_request(request), param).code == "missing_required_parameter"
    # a chunking strategy without a type is `auto`
    v.check_request(vs.CreateVectorStoreFileRequest(chunking_strategy=vs.ChunkingStrategy()))


def test_free_form_json_is_not_walked():
    tool = a.Tool(function=a.FunctionDefinition(name="f"))
    tool.function.parameters.update({"type": "object", "properties": {"type": {"type": "yaml"}}})
    v.check_request(a.CreateAssistantRequest(model="m", tools=[tool]))


def test_run_checks():
    ok = dict(assistant_id="asst_1")
    v.check_run(
        r.CreateRunRequest(**ok, tool_choice=r.ToolChoice(type="function", function=r.ToolChoiceFunction(name="f")))
    )
    _refused(lambda: v.check_run(r.CreateRunRequest()), "assistant_id")
    _refused(
        lambda: v.check_run(r.CreateRunRequest(**ok, tool_choice=r.ToolChoice(type="function"))),
        "tool_choice.function.name",
    )
    _refused(
        lambda: v.check_run(
            r.CreateRunRequest(**ok, truncation_strategy=r.TruncationStrategy(type="last_messages", last_messages=0))
        ),
        "truncation_strategy.last_messages",
    )
    _refused(lambda: v.check_run(r.CreateRunRequest(**ok, max_prompt_tokens=10)), "max_prompt_tokens")
    _refused(lambda: v.check_run(r.CreateThreadAndRunRequest(**ok, top_p=1.5)), "top_p")
    _refused(
        lambda: v.check_run(r.CreateRunRequest(**ok, response_format=a.ResponseFormat(type="json_schema"))),
        "response_format.json_schema.name",
    )


def test_assistant_and_tool_checks():
    v.check_assistant(
        a.CreateAssistantRequest(model="m", temperature=2, tools=[a.Tool(function=a.FunctionDefinition(name="ok_1"))])
    )
    _refused(lambda: v.check_assistant(a.CreateAssistantRequest(temperature=2.5)), "temperature")
    _refused(lambda: v.check_assistant(a.CreateAssistantRequest(name="x" * 257)), "name")
    bad_name = a.Tool(function=a.FunctionDefinition(name="no spaces"))
    _refused(lambda: v.check_assistant(a.CreateAssistantRequest(tools=[bad_name])), "tools[0].function.name")
    search = a.Tool(file_search=a.FileSearchTool(max_num_results=51))
    _refused(lambda: v.check_tools([search]), "tools[0].file_search.max_num_results")
    _refused(lambda: v.check_assistant(a.CreateAssistantRequest(metadata={str(i): "" for i in range(17)})), "metadata")


def test_message_checks():
    v.check_message(_user(text=m.TextContent(value="hi")))
    _refused(
        lambda: v.check_message(m.NewMessage(content=[m.MessageContent(text=m.TextContent(value="x"))]), "messages[2]"),
        "messages[2].role",
    )
    _refused(lambda: v.check_message(m.NewMessage(role=m.MESSAGE_ROLE_USER)), "content")
    annotated = _user(text=m.TextContent(value="x", annotations=[m.Annotation(text="x")]))
    _refused(lambda: v.check_message(annotated), "content[0].text")


def test_vector_store_checks():
    _refused(
        lambda: v.check_chunking_strategy(
            vs.ChunkingStrategy(type="static", static=vs.StaticChunking(max_chunk_size_tokens=50))
        ),
        "chunking_strategy.static.max_chunk_size_tokens",
    )
    _refused(
        lambda: v.check_chunking_strategy(
            vs.ChunkingStrategy(
                type="static", static=vs.StaticChunking(max_chunk_size_tokens=400, chunk_overlap_tokens=300)
            )
        ),
        "chunking_strategy.static.chunk_overlap_tokens",
    )
    v.check_chunking_strategy(vs.ChunkingStrategy(type="static", static=vs.StaticChunking(max_chunk_size_tokens=400)))
    _refused(
        lambda: v.check_expires_after(
            vs.CreateVectorStoreRequest(expires_after=vs.ExpiresAfter(anchor="last_active_at", days=0))
        ),
        "expires_after.days",
    )
    _refused(lambda: v.check_filter(vs.AttributeFilter(type="or")), "filters.filters")
    _refused(lambda: v.check_filter(vs.AttributeFilter(type="eq", key="k")), "filters.value")
    _refused(
        lambda: v.check_filter(vs.AttributeFilter(type="gt", value=struct_pb2.Value(number_value=1))), "filters.key"
    )
    assert v.check_search(vs.SearchVectorStoreRequest(query=[" ", "q"])) == (["q"], 10, 0.0)
    _refused(lambda: v.check_search(vs.SearchVectorStoreRequest(query=[" "])), "query")
    _refused(lambda: v.check_search(vs.SearchVectorStoreRequest(query=["q"], max_num_results=0)), "max_num_results")
    _refused(lambda: v.check_file_batch(vs.CreateFileBatchRequest()), "file_ids")
    attributes = struct_pb2.Struct()
    attributes.update({"k": {"nested": 1}})
    _refused(lambda: v.check_attributes(attributes), "attributes.k")


def test_list_and_upload_checks():
    assert v.check_limit(m.ListMessagesRequest()) == 20
    _refused(lambda: v.check_limit(m.ListMessagesRequest(limit=101)), "limit")
    _refused(lambda: v.check_upload(f.File(filename="a.txt", bytes=3), None), "purpose")
    _refused(lambda: v.check_upload(f.File(purpose="homework", filename="a.txt", bytes=3), None), "purpose")
    _refused(lambda: v.check_upload(f.File(purpose="assistants", filename="a.txt"), None), "file")
    v.check_upload(f.File(purpose="assistants", filename="a.txt", bytes=3), 3600)
