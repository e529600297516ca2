"""The gRPC API from generated stubs: typed RunEvents, WatchRun replay + tail, health, reflection."""

import grpc
import pytest
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import MODEL, unique

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores

E = run_pb2


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="module")
def grpc_assistant(channel):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    return stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL, instructions="grpc")).assistant


def _thread(channel, text: str) -> str:
    stub = thread_pb2_grpc.ThreadServiceStub(channel)
    message = message_pb2.NewMessage(role=message_pb2.MESSAGE_ROLE_USER)
    message.content.add().text.value = text
    return stub.CreateThread(thread_pb2.CreateThreadRequest(messages=[message])).thread.id


def _create_stream(channel, assistant_id, thread_id):
    stub = run_pb2_grpc.RunServiceStub(channel)
    params = run_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
    return stub.CreateRunStream(run_pb2.CreateRunStreamRequest(params=params))


def test_run_stream_is_typed_ordered_and_gap_free(channel, grpc_assistant):
    thread_id = _thread(channel, "[reply:typed events over gRPC]")
    events = [r.event for r in _create_stream(channel, grpc_assistant.id, thread_id)]
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    assert events[0].event == E.RUN_EVENT_TYPE_THREAD_RUN_CREATED and events[0].run.status == E.RUN_STATUS_QUEUED
    assert events[-2].event == E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED and events[-2].run.status == E.RUN_STATUS_COMPLETED
    assert events[-1].event == E.RUN_EVENT_TYPE_DONE and events[-1].WhichOneof("data") is None
    text = "".join(
        e.message_delta.delta.content[0].text.value for e in events if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    )
    assert text == "typed events over gRPC"
    completed = next(e for e in events if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED)
    assert completed.message.content[0].text.value == text


def test_watch_run_replays_exactly_the_events_after_k_for_a_finished_run(channel, grpc_assistant):
    thread_id = _thread(channel, "[reply:watch me finish]")
    original = [r.event for r in _create_stream(channel, grpc_assistant.id, thread_id)]
    stub = run_pb2_grpc.RunServiceStub(channel)
    run_id = original[0].run.id
    for k in (0, 3, len(original) - 1):
        replay = [
            r.event
            for r in stub.WatchRun(run_pb2.WatchRunRequest(thread_id=thread_id, run_id=run_id, after_sequence=k))
        ]
        assert replay == original[k:]


def _text_of(events) -> str:
    return "".join(
        e.message_delta.delta.content[0].text.value for e in events if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    )


def test_watch_run_tails_a_run_that_is_still_going(channel, grpc_assistant, provider):
    gate = unique("gate-tail")
    thread_id = _thread(channel, f"[chunks:20][gate:{gate}:10]")
    stream = _create_stream(channel, grpc_assistant.id, thread_id)
    first = [next(stream).event]
    while _text_of(first) != "".join(f"w{i} " for i in range(10)):
        first.append(next(stream).event)  # up to the last delta before the model stops at the gate
    run_id = first[0].run.id
    stub = run_pb2_grpc.RunServiceStub(channel)
    watch = stub.WatchRun(run_pb2.WatchRunRequest(thread_id=thread_id, run_id=run_id, after_sequence=5))
    watched = [next(watch).event]
    while watched[-1].sequence_number < first[-1].sequence_number:
        watched.append(next(watch).event)  # the replayed part
    # the watch is open and the run cannot have ended: its model call waits at the gate
    assert stub.GetRun(run_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id)).run.status == E.RUN_STATUS_IN_PROGRESS
    assert provider.is_held(gate)
    provider.release(gate)
    watched += [r.event for r in watch]  # what the run made after the watch began
    everything = first + [r.event for r in stream]
    assert watched == everything[5:]
    assert _text_of(watched[len(first) - 5 :]) == "".join(f"w{i} " for i in range(10, 20))
    assert watched[-1].event == E.RUN_EVENT_TYPE_DONE
    assert watched[-2].run.status == E.RUN_STATUS_COMPLETED


def test_grpc_errors_carry_openai_details(channel, grpc_assistant):
    stub = run_pb2_grpc.RunServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(run_pb2.GetRunRequest(thread_id="thread_x", run_id="run_nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "No run found with id 'run_nope'."
    thread_id = _thread(channel, "[chunks:50][slow:0.05]")
    stream = _create_stream(channel, grpc_assistant.id, thread_id)
    run_id = next(stream).event.run.id
    with pytest.raises(grpc.RpcError) as info:
        list(_create_stream(channel, grpc_assistant.id, thread_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stub.CancelRun(run_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id))
    assert [r.event for r in stream][-2].run.status == E.RUN_STATUS_CANCELLED


def test_health_serves_and_reflection_lists_the_services(channel):
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="assistd.v1.RunService")).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (reply,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in reply.list_services_response.service}
    assert {"assistd.v1.RunService", "assistd.v1.AssistantService", "grpc.health.v1.Health"} <= names


def test_a_typed_client_drives_a_tool_round_trip(channel):
    assistants = assistant_pb2_grpc.AssistantServiceStub(channel)
    tool = assistant_pb2.Tool()
    tool.function.name = "get_weather"
    tool.function.parameters.update({"type": "object", "properties": {"city": {"type": "string"}}})
    assistant = assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL, tools=[tool])).assistant
    thread_id = _thread(channel, '[call:get_weather:{"city": "Oslo"}]')
    first = [r.event for r in _create_stream(channel, assistant.id, thread_id)]
    assert first[-2].event == E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION
    run = first[-2].run
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Oslo"}'
    deltas = [
        e.run_step_delta.delta.step_details.tool_calls[0]
        for e in first
        if e.event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA
    ]
    assert deltas[0].id == call.id and "".join(d.function.arguments for d in deltas) == call.function.arguments

    runs = run_pb2_grpc.RunServiceStub(channel)
    params = run_pb2.SubmitToolOutputsRequest(
        thread_id=thread_id, run_id=run.id, tool_outputs=[run_pb2.ToolOutput(tool_call_id=call.id, output="4C")]
    )
    second = [r.event for r in runs.SubmitToolOutputsStream(run_pb2.SubmitToolOutputsStreamRequest(params=params))]
    assert second[0].sequence_number == first[-1].sequence_number + 1  # the same run's log goes on
    assert second[0].event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED
    assert second[0].run_step.step_details.tool_calls[0].function.output == "4C"
    assert second[-2].run.status == E.RUN_STATUS_COMPLETED
    text = "".join(
        e.message_delta.delta.content[0].text.value for e in second if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    )
    assert text == "Results: 4C"
    replay = [
        r.event
        for r in runs.WatchRun(
            run_pb2.WatchRunRequest(thread_id=thread_id, run_id=run.id, after_sequence=first[-1].sequence_number)
        )
    ]
    assert replay == second
