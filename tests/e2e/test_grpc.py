"""The gRPC API from generated stubs: typed RunEvents, WatchRun (by run id, replay + tail, across
segments to the run's end), health, reflection."""

import grpc
import pytest
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import MODEL, unique

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores

E = run_pb2
R = run_service_pb2


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
    stub = run_service_pb2_grpc.RunServiceStub(channel)
    return stub.CreateRunStream(R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id))


def test_run_stream_is_typed_ordered_and_gap_free(channel, grpc_assistant):
    thread_id = _thread(channel, "[reply:typed events over gRPC]")
    events = list(_create_stream(channel, grpc_assistant.id, thread_id))
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
    original = list(_create_stream(channel, grpc_assistant.id, thread_id))
    stub = run_service_pb2_grpc.RunServiceStub(channel)
    run_id = original[0].run.id
    for k in (0, 3, len(original) - 1):
        assert list(stub.WatchRun(R.WatchRunRequest(run_id=run_id, after_sequence=k))) == original[k:]
    assert list(stub.WatchRun(R.WatchRunRequest(run_id=run_id, after_sequence=len(original)))) == []
    # the thread is optional; when given it must be the run's
    assert list(stub.WatchRun(R.WatchRunRequest(run_id=run_id, thread_id=thread_id, after_sequence=3))) == original[3:]
    for request in (R.WatchRunRequest(run_id=run_id, thread_id="thread_other"), R.WatchRunRequest(run_id="run_nope")):
        with pytest.raises(grpc.RpcError) as info:
            list(stub.WatchRun(request))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        list(stub.WatchRun(R.WatchRunRequest()))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _text_of(events) -> str:
    return "".join(
        e.message_delta.delta.content[0].text.value for e in events if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    )


def test_watch_run_tails_a_run_that_is_still_going(channel, grpc_assistant, provider):
    gate = unique("gate-tail")
    thread_id = _thread(channel, f"[chunks:20][gate:{gate}:10]")
    stream = _create_stream(channel, grpc_assistant.id, thread_id)
    first = [next(stream)]
    while _text_of(first) != "".join(f"w{i} " for i in range(10)):
        first.append(next(stream))  # up to the last delta before the model stops at the gate
    run_id = first[0].run.id
    stub = run_service_pb2_grpc.RunServiceStub(channel)
    watch = stub.WatchRun(R.WatchRunRequest(run_id=run_id, after_sequence=5))
    watched = [next(watch)]
    while watched[-1].sequence_number < first[-1].sequence_number:
        watched.append(next(watch))  # the replayed part
    # the watch is open and the run cannot have ended: its model call waits at the gate
    assert stub.GetRun(R.GetRunRequest(thread_id=thread_id, run_id=run_id)).run.status == E.RUN_STATUS_IN_PROGRESS
    assert provider.is_held(gate)
    provider.release(gate)
    watched += list(watch)  # what the run made after the watch began
    everything = first + list(stream)
    assert watched == everything[5:]
    assert _text_of(watched[len(first) - 5 :]) == "".join(f"w{i} " for i in range(10, 20))
    assert watched[-1].event == E.RUN_EVENT_TYPE_DONE
    assert watched[-2].run.status == E.RUN_STATUS_COMPLETED


def test_grpc_errors_carry_openai_details(channel, grpc_assistant):
    stub = run_service_pb2_grpc.RunServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(R.GetRunRequest(thread_id="thread_x", run_id="run_nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "No run found with id 'run_nope'."
    thread_id = _thread(channel, "[chunks:50][slow:0.05]")
    stream = _create_stream(channel, grpc_assistant.id, thread_id)
    run_id = next(stream).run.id
    with pytest.raises(grpc.RpcError) as info:
        list(_create_stream(channel, grpc_assistant.id, thread_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stub.CancelRun(R.CancelRunRequest(thread_id=thread_id, run_id=run_id))
    assert list(stream)[-2].run.status == E.RUN_STATUS_CANCELLED


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
    first = list(_create_stream(channel, assistant.id, thread_id))
    assert first[-2].event == E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION
    run = first[-2].run
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Oslo"}'
    deltas = [
        e.run_step_delta.delta.step_details.tool_calls.items[0]
        for e in first
        if e.event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA
    ]
    assert deltas[0].id == call.id and "".join(d.function.arguments for d in deltas) == call.function.arguments

    runs = run_service_pb2_grpc.RunServiceStub(channel)
    submit = R.SubmitToolOutputsRequest(
        thread_id=thread_id, run_id=run.id, tool_outputs=[run_pb2.ToolOutput(tool_call_id=call.id, output="4C")]
    )
    second = list(runs.SubmitToolOutputsStream(submit))
    assert second[0].sequence_number == first[-1].sequence_number + 1  # the same run's log goes on
    assert second[0].event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED
    assert second[0].run_step.step_details.tool_calls.items[0].function.output == "4C"
    assert second[-2].run.status == E.RUN_STATUS_COMPLETED
    text = "".join(
        e.message_delta.delta.content[0].text.value for e in second if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    )
    assert text == "Results: 4C"
    replay = list(runs.WatchRun(R.WatchRunRequest(run_id=run.id, after_sequence=first[-1].sequence_number)))
    assert replay == second
    whole = list(runs.WatchRun(R.WatchRunRequest(run_id=run.id)))  # both segments, each with its `done`
    assert whole == first + second
    assert [e.event for e in whole].count(E.RUN_EVENT_TYPE_DONE) == 2


def test_watch_run_follows_a_run_through_requires_action_to_its_end(channel):
    """A watch begun before the model's call ends only after the tool outputs are in and the
    run has completed: the first segment's `done` is passed on, not the end of the watch."""
    assistants = assistant_pb2_grpc.AssistantServiceStub(channel)
    tool = assistant_pb2.Tool()
    tool.function.name = "get_weather"
    assistant = assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model=MODEL, tools=[tool])).assistant
    thread_id = _thread(channel, '[call:get_weather:{"city": "Rome"}]')
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    run = runs.CreateRun(R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id)).run
    watch = runs.WatchRun(R.WatchRunRequest(run_id=run.id))
    first = [next(watch)]
    while first[-1].event != E.RUN_EVENT_TYPE_DONE:
        first.append(next(watch))
    assert first[-2].event == E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION
    (call,) = first[-2].run.required_action.submit_tool_outputs.tool_calls
    # the watch is still open: nothing more can come until the outputs are submitted
    assert runs.GetRun(R.GetRunRequest(thread_id=thread_id, run_id=run.id)).run.status == E.RUN_STATUS_REQUIRES_ACTION
    runs.SubmitToolOutputs(
        R.SubmitToolOutputsRequest(
            thread_id=thread_id, run_id=run.id, tool_outputs=[run_pb2.ToolOutput(tool_call_id=call.id, output="21C")]
        )
    )
    rest = list(watch)
    assert [e.sequence_number for e in first + rest] == list(range(1, len(first) + len(rest) + 1))
    assert rest[-1].event == E.RUN_EVENT_TYPE_DONE and rest[-2].run.status == E.RUN_STATUS_COMPLETED
    assert _text_of(rest) == "Results: 21C"


def test_an_update_mask_replaces_the_fields_it_names_and_clears_those_left_unset(channel):
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    created = stub.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(
            model=MODEL, name="n1", instructions="i1", metadata={"a": "1"}, tools=[_weather_tool()]
        )
    ).assistant
    changed = stub.UpdateAssistant(
        assistant_pb2.UpdateAssistantRequest(
            assistant_id=created.id,
            assistant=assistant_pb2.Assistant(name="n2", metadata={"b": "2"}, description="ignored: not in the mask"),
            update_mask=field_mask_pb2.FieldMask(paths=["name", "metadata", "instructions", "tools"]),
        )
    ).assistant
    assert changed.name == "n2" and dict(changed.metadata) == {"b": "2"}  # maps are replaced whole
    assert not changed.HasField("instructions") and list(changed.tools) == []  # named but unset: cleared
    assert not changed.HasField("description") and changed.model == MODEL  # not named: kept
    assert stub.GetAssistant(assistant_pb2.GetAssistantRequest(assistant_id=created.id)).assistant == changed
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateAssistant(
            assistant_pb2.UpdateAssistantRequest(
                assistant_id=created.id, update_mask=field_mask_pb2.FieldMask(paths=["model"])
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'model'" in info.value.details()


def _weather_tool() -> assistant_pb2.Tool:
    tool = assistant_pb2.Tool()
    tool.function.name = "get_weather"
    return tool


def test_vector_store_search_pages_with_next_page(channel, client):
    vs = client.vector_stores.create(name="paging")
    for i in range(3):
        client.vector_stores.files.upload_and_poll(
            vector_store_id=vs.id,
            file=(f"comet{i}.txt", f"Comet {i} has a long tail of dust.".encode()),
            poll_interval_ms=50,
        )
    stub = vector_store_pb2_grpc.VectorStoreServiceStub(channel)
    request = vector_store_pb2.SearchVectorStoreRequest(vector_store_id=vs.id, query=["comet tail"], max_num_results=2)
    first = stub.SearchVectorStore(request)
    assert len(first.data) == 2 and first.has_more and first.next_page
    request.page_token = first.next_page
    second = stub.SearchVectorStore(request)
    assert len(second.data) == 1 and not second.has_more and not second.HasField("next_page")
    names = [r.filename for r in [*first.data, *second.data]]
    assert sorted(names) == ["comet0.txt", "comet1.txt", "comet2.txt"]
    assert [r.score for r in [*first.data, *second.data]] == sorted(
        (r.score for r in [*first.data, *second.data]), reverse=True
    )
    request.max_num_results = 1  # a token is only good for the search that issued it
    with pytest.raises(grpc.RpcError) as info:
        stub.SearchVectorStore(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in info.value.details()
    everything = client.vector_stores.search(vector_store_id=vs.id, query="comet tail").data  # HTTP: one page
    assert sorted(r.filename for r in everything) == sorted(names)
