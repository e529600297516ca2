"""Request validation (service/validation.py): every enum of every request (the closed sets),
unknown enum numbers, empty `type` oneofs, update masks, and the per-call checks. No server: the
functions the servicers call."""

import pytest
from assistd.v1 import (
    assistant_pb2 as a,
)
from assistd.v1 import (
    common_pb2,
    options_pb2,
)
from assistd.v1 import (
    container_pb2 as c,
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
    run_service_pb2 as rs,
)
from assistd.v1 import (
    thread_pb2 as t,
)
from assistd.v1 import (
    vector_store_pb2 as vs,
)
from google.protobuf import field_mask_pb2, message_factory, struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from service import validation as v
from service.errors import InvalidArgument
from service.protojson import enum_names


def _refused(call, param: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        call()
    assert info.value.param == param, info.value.message
    return info.value


def _user(**content) -> m.NewMessage:
    return m.NewMessage(role=m.MESSAGE_ROLE_USER, content=[m.MessageContent(**content)])


# ---------------------------------------------------------------- every enum of every request

_MODULES = (a, t, m, r, rs, f, vs, c)
_REQUESTS = [
    method.input_type
    for module in _MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _json_list(descriptor) -> bool:
    return descriptor.GetOptions().Extensions[options_pb2.json_list]


def _inline(field) -> bool:
    oneof = field.containing_oneof
    return oneof is not None and oneof.GetOptions().Extensions[options_pb2.json_inline]


def _enum_paths(descriptor, path=(), seen=()):
    """Every (path of fields, enum field) reachable from a message, each message type entered
    once per path (AttributeFilter nests itself)."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_ENUM:
            yield path, field
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            inner = field.message_type
            if inner.full_name in seen or inner.full_name.startswith("google.protobuf."):
                continue
            if _json_list(inner):
                (items,) = inner.fields
                yield from _enum_paths(items.message_type, (*path, field, items), (*seen, inner.full_name))
            else:
                yield from _enum_paths(inner, (*path, field), (*seen, inner.full_name))


def _build(request_descriptor, path, enum_field, number):
    """The request with `number` in the enum field at path (repeated fields get one item), the
    enums that must be given on the way set to their first value; and the JSON param naming it."""
    request = message_factory.GetMessageClass(request_descriptor)()
    resource = v.update_resource(request)
    node, param = request, ""
    for field in path:
        if field.is_repeated:
            node = getattr(node, field.name).add()
            wrapped = _json_list(field.containing_type)  # a list wrapper's items: the wrapper's own name
            param = f"{param}[0]" if wrapped else (f"{param}.{field.name}[0]" if param else f"{field.name}[0]")
        else:
            node = getattr(node, field.name)
            node.SetInParent()
            transparent = (resource is not None and field is resource) or _inline(field)
            if not transparent:
                param = f"{param}.{field.name}" if param else field.name
        for required in node.DESCRIPTOR.fields:
            if (node.DESCRIPTOR.full_name, required.name) in v.REQUIRED and required is not enum_field:
                setattr(node, required.name, required.enum_type.values[1].number)
    name = f"{param}.{enum_field.name}" if param else enum_field.name
    if enum_field.is_repeated:
        getattr(node, enum_field.name).append(number)
        name += "[0]"
    else:
        setattr(node, enum_field.name, number)
    return request, name


_CASES = [
    (request, path, field)
    for request in {d.full_name: d for d in _REQUESTS}.values()
    for path, field in _enum_paths(request)
]


def _case_id(case) -> str:
    request, path, field = case
    return ".".join([request.name, *(f.name for f in path), field.name])


@pytest.mark.parametrize("case", _CASES, ids=_case_id)
def test_every_enum_of_every_request_takes_its_values_and_refuses_unknown_numbers(case):
    request_descriptor, path, field = case
    names = [value.name for value in field.enum_type.values if value.number]
    for value in field.enum_type.values[1:]:
        request, _ = _build(request_descriptor, path, field, value.number)
        v.check_request(request)
    request, param = _build(request_descriptor, path, field, 99)  # proto3 enums are open: 99 arrives as is
    error = _refused(lambda: v.check_request(request), param)
    assert error.code == "invalid_value" and names
    assert error.message == f"Invalid value: 99. Supported values are: {v.supported(enum_names(field.enum_type))}."


def test_the_walk_reaches_the_closed_sets_of_nested_objects():
    found = {_case_id(case) for case in _CASES}
    assert {
        "CreateAssistantRequest.reasoning_effort",
        "UpdateAssistantRequest.assistant.reasoning_effort",
        "CreateRunRequest.tools.items.file_search.ranking_options.ranker",
        "CreateRunRequest.truncation_strategy.type",
        "CreateRunRequest.include",
        "CreateThreadAndRunRequest.thread.messages.content.image_file.detail",
        "SearchVectorStoreRequest.filters.comparison.type",
        "SearchVectorStoreRequest.filters.compound.type",
        "SearchVectorStoreRequest.ranking_options.ranker",
        "CreateVectorStoreRequest.expires_after.anchor",
        "UploadFileRequest.purpose",
        "ListVectorStoreFilesRequest.filter",
    } <= found
    assert len(_CASES) > 40


def test_the_sets_are_openais():
    assert enum_names(a.ReasoningEffort.DESCRIPTOR) == ["none", "minimal", "low", "medium", "high", "xhigh"]
    # assistants_output: files assistd makes (never an upload's purpose, see check_upload)
    assert enum_names(f.FilePurpose.DESCRIPTOR) == [
        "assistants",
        "batch",
        "fine-tune",
        "vision",
        "user_data",
        "evals",
        "assistants_output",
    ]
    assert enum_names(vs.SearchRanker.DESCRIPTOR) == ["none", "auto", "default-2024-11-15"]
    assert [field.name for field in a.ResponseFormat.DESCRIPTOR.oneofs_by_name["kind"].fields] == [
        "auto",
        "text",
        "json_object",
        "json_schema",
    ]


def test_an_update_mask_names_only_what_the_update_changes():
    update = a.UpdateAssistantRequest(assistant_id="a", update_mask=field_mask_pb2.FieldMask(paths=["name", "tools"]))
    v.check_request(update)
    for path in ("created_at", "id", "bogus"):
        bad = a.UpdateAssistantRequest(assistant_id="a", update_mask=field_mask_pb2.FieldMask(paths=["name", path]))
        error = _refused(lambda bad=bad: v.check_request(bad), path)
        assert error.code == "unknown_parameter" and error.message == f"Unknown parameter: '{path}'."
    for cls, resource in (
        (t.UpdateThreadRequest, "thread"),
        (m.UpdateMessageRequest, "message"),
        (rs.UpdateRunRequest, "run"),
        (vs.UpdateVectorStoreRequest, "vector_store"),
        (vs.UpdateVectorStoreFileRequest, "file"),
    ):
        assert v.update_resource(cls()).name == resource
        _refused(lambda cls=cls: v.check_request(cls(update_mask=field_mask_pb2.FieldMask(paths=["id"]))), "id")


def test_unknown_roles_are_refused_wherever_messages_are_written():
    bad = m.NewMessage(role=7, content=[m.MessageContent(text=m.TextContent(value="x"))])
    _refused(lambda: v.check_request(m.CreateMessageRequest(thread_id="t", role=7)), "role")
    _refused(lambda: v.check_request(t.CreateThreadRequest(messages=[bad])), "messages[0].role")
    _refused(lambda: v.check_request(rs.CreateRunRequest(additional_messages=[bad])), "additional_messages[0].role")
    run = rs.CreateThreadAndRunRequest(thread=rs.ThreadParams(messages=[bad]))
    _refused(lambda: v.check_request(run), "thread.messages[0].role")
    error = _refused(lambda: v.check_enum(7, m.MessageRole.DESCRIPTOR, "role"), "role")
    assert error.message == "Invalid value: 7. Supported values are: 'user', 'assistant'."
    v.check_enum(m.MESSAGE_ROLE_ASSISTANT, m.MessageRole.DESCRIPTOR, "role")
    v.check_request(m.ListMessagesRequest(order=common_pb2.LIST_ORDER_ASC))


def test_an_empty_type_oneof_is_a_missing_type():
    _refused(lambda: v.check_request(a.CreateAssistantRequest(model="m", tools=[a.Tool()])), "tools[0].type")
    _refused(lambda: v.check_request(rs.CreateRunRequest(tools=a.ToolList(items=[a.Tool()]))), "tools[0].type")
    attachment = m.Attachment(file_id="file-1", tools=[m.AttachmentTool()])
    request = m.CreateMessageRequest(role=m.MESSAGE_ROLE_USER, attachments=[attachment])
    _refused(lambda: v.check_request(request), "attachments[0].tools[0].type")
    _refused(lambda: v.check_request(m.CreateMessageRequest(content=[m.MessageContent()])), "content[0].type")
    _refused(lambda: v.check_tools([a.Tool()]), "tools[0].type")
    v.check_request(a.CreateAssistantRequest(tools=[a.Tool(code_interpreter=a.CodeInterpreterTool())]))


def test_types_without_a_default_are_required():
    comparison = vs.AttributeFilter(comparison=vs.ComparisonFilter(key="k"))
    cases = [
        (rs.CreateRunRequest(response_format=a.ResponseFormat()), "response_format.type"),
        (rs.CreateRunRequest(truncation_strategy=r.TruncationStrategy()), "truncation_strategy.type"),
        (rs.CreateRunRequest(tool_choice=r.ToolChoice()), "tool_choice.type"),
        (vs.SearchVectorStoreRequest(filters=vs.AttributeFilter()), "filters.type"),
        (vs.SearchVectorStoreRequest(filters=comparison), "filters.type"),
        (
            vs.SearchVectorStoreRequest(
                filters=vs.AttributeFilter(
                    compound=vs.CompoundFilter(type=vs.COMPOUND_OPERATOR_OR, filters=[vs.AttributeFilter()])
                )
            ),
            "filters.filters[0].type",
        ),
        (
            vs.UpdateVectorStoreRequest(vector_store=vs.VectorStore(expires_after=vs.ExpiresAfter(days=3))),
            "expires_after.anchor",
        ),
        (vs.CreateVectorStoreFileRequest(chunking_strategy=vs.ChunkingStrategyParam()), "chunking_strategy.type"),
    ]
    for request, param in cases:
        assert _refused(lambda request=request: v.check_request(request), param).code == "missing_required_parameter"


def test_free_form_json_is_not_walked():
    tool = a.Tool(function=a.FunctionDefinition(name="f"))
    tool.function.parameters.update({"type": "object", "properties": {"type": {"type": "yaml"}}})
    v.check_request(a.CreateAssistantRequest(model="m", tools=[tool]))


def test_run_checks():
    ok = dict(assistant_id="asst_1")
    v.check_run(rs.CreateRunRequest(**ok, tool_choice=r.ToolChoice(function=r.ToolChoiceFunction(name="f"))))
    _refused(lambda: v.check_run(rs.CreateRunRequest()), "assistant_id")
    _refused(
        lambda: v.check_run(rs.CreateRunRequest(**ok, tool_choice=r.ToolChoice(function=r.ToolChoiceFunction()))),
        "tool_choice.function.name",
    )
    last_zero = r.TruncationStrategy(type=r.TRUNCATION_STRATEGY_TYPE_LAST_MESSAGES, last_messages=0)
    _refused(
        lambda: v.check_run(rs.CreateRunRequest(**ok, truncation_strategy=last_zero)),
        "truncation_strategy.last_messages",
    )
    _refused(lambda: v.check_run(rs.CreateRunRequest(**ok, max_prompt_tokens=10)), "max_prompt_tokens")
    _refused(lambda: v.check_run(rs.CreateThreadAndRunRequest(**ok, top_p=1.5)), "top_p")
    _refused(
        lambda: v.check_run(
            rs.CreateRunRequest(**ok, response_format=a.ResponseFormat(json_schema=a.JsonSchemaFormat()))
        ),
        "response_format.json_schema.name",
    )
    _refused(lambda: v.check_run(rs.CreateRunRequest(**ok, tools=a.ToolList(items=[a.Tool()] * 129))), "tools")


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
        lambda: v.check_chunking_strategy(vs.ChunkingStrategyParam(static=vs.StaticChunking(max_chunk_size_tokens=50))),
        "chunking_strategy.static.max_chunk_size_tokens",
    )
    _refused(
        lambda: v.check_chunking_strategy(
            vs.ChunkingStrategyParam(static=vs.StaticChunking(max_chunk_size_tokens=400, chunk_overlap_tokens=300))
        ),
        "chunking_strategy.static.chunk_overlap_tokens",
    )
    v.check_chunking_strategy(vs.ChunkingStrategyParam(static=vs.StaticChunking(max_chunk_size_tokens=400)))
    v.check_chunking_strategy(vs.ChunkingStrategyParam(auto=vs.AutoChunkingStrategy()))
    anchor = vs.EXPIRES_AFTER_ANCHOR_LAST_ACTIVE_AT
    _refused(
        lambda: v.check_expires_after(
            vs.CreateVectorStoreRequest(expires_after=vs.ExpiresAfter(anchor=anchor, days=0))
        ),
        "expires_after.days",
    )
    _refused(
        lambda: v.check_filter(vs.AttributeFilter(compound=vs.CompoundFilter(type=vs.COMPOUND_OPERATOR_OR))),
        "filters.filters",
    )
    eq = vs.ComparisonFilter(type=vs.COMPARISON_OPERATOR_EQ, key="k")
    _refused(lambda: v.check_filter(vs.AttributeFilter(comparison=eq)), "filters.value")
    gt = vs.ComparisonFilter(type=vs.COMPARISON_OPERATOR_GT, value=struct_pb2.Value(number_value=1))
    _refused(lambda: v.check_filter(vs.AttributeFilter(comparison=gt)), "filters.key")
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
    _refused(lambda: v.check_request(f.UploadFileRequest(purpose=42)), "purpose")
    _refused(lambda: v.check_upload(f.File(purpose=f.FILE_PURPOSE_ASSISTANTS, filename="a.txt"), None), "file")
    v.check_upload(f.File(purpose=f.FILE_PURPOSE_ASSISTANTS, filename="a.txt", bytes=3), 3600)
