"""The gRPC surface refuses what the HTTP surface refuses, and neither stores a refused request.

Over real gRPC (generated stubs against `assistd serve`) and over HTTP (the openai SDK, raw
bodies through `client.post`): an unknown message role, an unknown list order, a tool with no
type, a response format with no type (`"yaml"` over HTTP) and an unknown reasoning effort (a
number the enum does not define over gRPC, `"extreme"` over HTTP); and, gRPC only, an update
mask naming what the update cannot change.
"""

import uuid

import grpc
import openai
import pytest
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]
EXTREME = 42  # a ReasoningEffort number the enum does not define: proto3 delivers it as is


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture
def marker():
    return uuid.uuid4().hex


def _refusal(call) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a call that must fail with INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    status = rpc_status.from_call(info.value)
    (detail,) = status.details
    error_info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(error_info)
    assert error_info.domain == "assistd.dev"
    return error_info


def _text(value: str) -> message_pb2.MessageContent:
    return message_pb2.MessageContent(text=message_pb2.TextContent(value=value))


def _grpc_thread(channel) -> str:
    return thread_pb2_grpc.ThreadServiceStub(channel).CreateThread(thread_pb2.CreateThreadRequest()).thread.id


def _assistants_marked(client, marker: str) -> list:
    return [a for a in client.beta.assistants.list(limit=100) if a.metadata.get("marker") == marker]


# ---------------------------------------------------------------- gRPC


def test_grpc_refuses_an_unknown_message_role_and_stores_nothing(channel, client):
    thread_id = _grpc_thread(channel)
    messages = message_pb2_grpc.MessageServiceStub(channel)
    request = message_pb2.CreateMessageRequest(thread_id=thread_id, role=7, content=[_text("hello")])
    info = _refusal(lambda: messages.CreateMessage(request))
    assert info.metadata["param"] == "role" and info.reason == "INVALID_VALUE"
    bad = message_pb2.NewMessage(role=7, content=[_text("hello")])
    info = _refusal(
        lambda: thread_pb2_grpc.ThreadServiceStub(channel).CreateThread(thread_pb2.CreateThreadRequest(messages=[bad]))
    )
    assert info.metadata["param"] == "messages[0].role"
    assert list(messages.ListMessages(message_pb2.ListMessagesRequest(thread_id=thread_id)).data) == []
    assert client.beta.threads.messages.list(thread_id=thread_id).data == []  # HTTP still answers 200


def test_grpc_refuses_an_unknown_list_order(channel):
    thread_id = _grpc_thread(channel)
    messages = message_pb2_grpc.MessageServiceStub(channel)
    info = _refusal(lambda: messages.ListMessages(message_pb2.ListMessagesRequest(thread_id=thread_id, order=9)))
    assert info.metadata["param"] == "order" and info.metadata["code"] == "invalid_value"
    assistants = assistant_pb2_grpc.AssistantServiceStub(channel)
    assert (
        _refusal(lambda: assistants.ListAssistants(assistant_pb2.ListAssistantsRequest(order=9))).metadata["param"]
        == "order"
    )


def test_grpc_refuses_a_tool_with_no_type_and_stores_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    create = assistant_pb2.CreateAssistantRequest(
        model=MODEL, tools=[assistant_pb2.Tool()], metadata={"marker": marker}
    )
    info = _refusal(lambda: stub.CreateAssistant(create))
    assert info.metadata["param"] == "tools[0].type" and info.reason == "MISSING_REQUIRED_PARAMETER"
    assert _assistants_marked(client, marker) == []
    kept = stub.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model=MODEL, metadata={"marker": marker})
    ).assistant
    update = assistant_pb2.UpdateAssistantRequest(
        assistant_id=kept.id,
        assistant=assistant_pb2.Assistant(tools=[assistant_pb2.Tool()]),
        update_mask=field_mask_pb2.FieldMask(paths=["tools"]),
    )
    assert _refusal(lambda: stub.UpdateAssistant(update)).metadata["param"] == "tools[0].type"
    thread_id = _grpc_thread(channel)
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    run = run_service_pb2.CreateRunRequest(
        thread_id=thread_id, assistant_id=kept.id, tools=assistant_pb2.ToolList(items=[assistant_pb2.Tool()])
    )
    assert _refusal(lambda: runs.CreateRun(run)).metadata["param"] == "tools[0].type"
    assert client.beta.assistants.retrieve(kept.id).tools == []
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


def test_grpc_refuses_a_response_format_with_no_type_and_stores_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    untyped = assistant_pb2.ResponseFormat()  # the oneof that is its `type` left empty
    create = assistant_pb2.CreateAssistantRequest(model=MODEL, response_format=untyped, metadata={"marker": marker})
    info = _refusal(lambda: stub.CreateAssistant(create))
    assert info.metadata["param"] == "response_format.type" and info.metadata["code"] == "missing_required_parameter"
    assert _assistants_marked(client, marker) == []
    assistant = stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL)).assistant
    thread_id = _grpc_thread(channel)
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    params = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id, response_format=untyped)
    assert _refusal(lambda: runs.CreateRun(params)).metadata["param"] == "response_format.type"
    assert _refusal(lambda: list(runs.CreateRunStream(params))).metadata["param"] == "response_format.type"
    assert list(runs.ListRuns(run_service_pb2.ListRunsRequest(thread_id=thread_id)).data) == []
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


def test_grpc_refuses_an_unknown_reasoning_effort_and_stores_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    create = assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort=EXTREME, metadata={"marker": marker})
    info = _refusal(lambda: stub.CreateAssistant(create))
    assert info.metadata["param"] == "reasoning_effort" and info.metadata["code"] == "invalid_value"
    assert _assistants_marked(client, marker) == []
    assistant = stub.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort=assistant_pb2.REASONING_EFFORT_LOW)
    ).assistant
    update = assistant_pb2.UpdateAssistantRequest(
        assistant_id=assistant.id,
        assistant=assistant_pb2.Assistant(reasoning_effort=EXTREME),
        update_mask=field_mask_pb2.FieldMask(paths=["reasoning_effort"]),
    )
    assert _refusal(lambda: stub.UpdateAssistant(update)).metadata["param"] == "reasoning_effort"
    assert client.beta.assistants.retrieve(assistant.id).reasoning_effort == "low"
    thread_id = _grpc_thread(channel)
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    run = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id, reasoning_effort=EXTREME)
    assert _refusal(lambda: runs.CreateRun(run)).metadata["param"] == "reasoning_effort"
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


def test_grpc_refuses_an_update_mask_naming_what_cannot_change_and_changes_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    kept = stub.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model=MODEL, name="before", metadata={"marker": marker})
    ).assistant
    update = assistant_pb2.UpdateAssistantRequest(
        assistant_id=kept.id,
        assistant=assistant_pb2.Assistant(name="after", created_at=1),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "created_at"]),
    )
    info = _refusal(lambda: stub.UpdateAssistant(update))
    assert info.metadata["param"] == "created_at" and info.reason == "UNKNOWN_PARAMETER"
    assert client.beta.assistants.retrieve(kept.id).name == "before"
    del update.update_mask.paths[1:]
    assert stub.UpdateAssistant(update).assistant.name == "after"
    assert client.beta.assistants.retrieve(kept.id).created_at == kept.created_at


# ---------------------------------------------------------------- HTTP, through the openai SDK


def _bad_request(call) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        call()
    assert info.value.status_code == 400 and info.value.body["type"] == "invalid_request_error"
    return info.value


def test_http_refuses_the_same_values_with_param_and_stores_nothing(client, marker):
    thread = client.beta.threads.create()
    assistant = client.beta.assistants.create(model=MODEL)
    cases = [
        (f"/threads/{thread.id}/messages", {"role": "robot", "content": "hi"}, "role"),
        ("/assistants", {"model": MODEL, "tools": [{}], "metadata": {"marker": marker}}, "tools[0].type"),
        (
            "/assistants",
            {"model": MODEL, "response_format": {"type": "yaml"}, "metadata": {"marker": marker}},
            "response_format.type",
        ),
        (
            "/assistants",
            {"model": MODEL, "reasoning_effort": "extreme", "metadata": {"marker": marker}},
            "reasoning_effort",
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "response_format": "yaml"},
            "response_format.type",
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "reasoning_effort": "extreme"},
            "reasoning_effort",
        ),
        (f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "tools": [{}]}, "tools[0].type"),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "stream": True, "response_format": {"type": "yaml"}},
            "response_format.type",
        ),
    ]
    for path, body, param in cases:
        error = _bad_request(lambda path=path, body=body: client.post(path, body=body, cast_to=object))
        assert error.param == param, (path, body, error.body)
    error = _bad_request(
        lambda: client.get(f"/threads/{thread.id}/messages", options={"params": {"order": "sideways"}}, cast_to=object)
    )
    assert error.param == "order"
    assert _assistants_marked(client, marker) == []
    assert client.beta.threads.messages.list(thread_id=thread.id).data == []
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def test_http_and_grpc_word_the_refusal_the_same(channel, client):
    http = _bad_request(
        lambda: client.post("/assistants", body={"model": MODEL, "reasoning_effort": "extreme"}, cast_to=object)
    )
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort=EXTREME))
    allowed = "Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh'."
    assert info.value.details() == f"Invalid value: {EXTREME}. {allowed}"
    assert http.body["message"] == f"Invalid value: 'extreme'. {allowed}"
    assert http.code == "invalid_value"
