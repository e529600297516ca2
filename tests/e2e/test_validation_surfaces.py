"""The gRPC surface refuses what the HTTP surface refuses, and neither stores a refused request.

Over real gRPC (generated stubs against `assistd serve`) and over HTTP (the openai SDK, raw
bodies through `client.post`): an unknown message role, an unknown list order, a tool with no
type, `response_format.type: "yaml"` and `reasoning_effort: "extreme"`.
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
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]


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
    update = assistant_pb2.UpdateAssistantRequest(assistant_id=kept.id, tools=[assistant_pb2.Tool()], set_tools=True)
    assert _refusal(lambda: stub.UpdateAssistant(update)).metadata["param"] == "tools[0].type"
    thread_id = _grpc_thread(channel)
    runs = run_pb2_grpc.RunServiceStub(channel)
    run = run_pb2.CreateRunRequest(
        thread_id=thread_id, assistant_id=kept.id, tools=[assistant_pb2.Tool()], set_tools=True
    )
    assert _refusal(lambda: runs.CreateRun(run)).metadata["param"] == "tools[0].type"
    assert client.beta.assistants.retrieve(kept.id).tools == []
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


def test_grpc_refuses_a_yaml_response_format_and_stores_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    yaml = assistant_pb2.ResponseFormat(type="yaml")
    create = assistant_pb2.CreateAssistantRequest(model=MODEL, response_format=yaml, metadata={"marker": marker})
    info = _refusal(lambda: stub.CreateAssistant(create))
    assert info.metadata["param"] == "response_format.type" and info.metadata["code"] == "invalid_value"
    assert _assistants_marked(client, marker) == []
    assistant = stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL)).assistant
    thread_id = _grpc_thread(channel)
    runs = run_pb2_grpc.RunServiceStub(channel)
    params = run_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id, response_format=yaml)
    assert _refusal(lambda: runs.CreateRun(params)).metadata["param"] == "response_format.type"
    stream = run_pb2.CreateRunStreamRequest(params=params)
    assert _refusal(lambda: list(runs.CreateRunStream(stream))).metadata["param"] == "response_format.type"
    assert list(runs.ListRuns(run_pb2.ListRunsRequest(thread_id=thread_id)).data) == []
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


def test_grpc_refuses_an_unknown_reasoning_effort_and_stores_nothing(channel, client, marker):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    create = assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort="extreme", metadata={"marker": marker})
    info = _refusal(lambda: stub.CreateAssistant(create))
    assert info.metadata["param"] == "reasoning_effort"
    assert _assistants_marked(client, marker) == []
    assistant = stub.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort="low")
    ).assistant
    update = assistant_pb2.UpdateAssistantRequest(assistant_id=assistant.id, reasoning_effort="extreme")
    assert _refusal(lambda: stub.UpdateAssistant(update)).metadata["param"] == "reasoning_effort"
    assert client.beta.assistants.retrieve(assistant.id).reasoning_effort == "low"
    thread_id = _grpc_thread(channel)
    runs = run_pb2_grpc.RunServiceStub(channel)
    run = run_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id, reasoning_effort="extreme")
    assert _refusal(lambda: runs.CreateRun(run)).metadata["param"] == "reasoning_effort"
    assert client.beta.threads.runs.list(thread_id=thread_id).data == []


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
        stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL, reasoning_effort="extreme"))
    assert info.value.details() == http.body["message"]
    assert http.body["message"].startswith("Invalid value: 'extreme'. Supported values are: 'none', 'minimal', 'low'")
    assert http.code == "invalid_value"
