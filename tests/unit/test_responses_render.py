"""The Responses rendering of a run's event log (service/responses/render.py): pure, so fed
hand-made RunEvents. Asserted on the JSON the edge writes of the typed events."""

from assistd.v1 import common_pb2, message_pb2, run_pb2

from edge import codec
from edge.responses import event_json
from service.responses import render
from service.responses.render import Renderer


def render_all(base, events, include=(), container_id=""):
    """The typed rendering as the OpenAI JSON the edge writes of it."""
    typed, response = render.render_all(base, events, include, container_id)
    return [event_json(event) for event in typed], codec.render(response)


E = run_pb2
BASE = {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "background": False}


def _run(status, prompt=0, completion=0, **fields) -> run_pb2.Run:
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=status, **fields)
    run.usage.CopyFrom(common_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion))
    return run


def _events(*pairs) -> list[run_pb2.RunEvent]:
    events = []
    for i, (kind, payload) in enumerate(pairs, start=1):
        event = run_pb2.RunEvent(sequence_number=i, event=kind)
        if payload is not None:
            field = {
                run_pb2.Run: "run",
                message_pb2.Message: "message",
                message_pb2.MessageDeltaEvent: "message_delta",
                run_pb2.RunStepDeltaEvent: "run_step_delta",
                run_pb2.RunStep: "run_step",
            }[type(payload)]
            getattr(event, field).CopyFrom(payload)
        events.append(event)
    return events


def _text_delta(text: str) -> message_pb2.MessageDeltaEvent:
    delta = message_pb2.MessageDeltaEvent(id="msg_1")
    delta.delta.content.add(index=0).text.value = text
    return delta


def _text_log(end=E.RUN_STATUS_COMPLETED):
    message = message_pb2.Message(id="msg_1", status=message_pb2.MESSAGE_STATUS_IN_PROGRESS)
    done = message_pb2.Message(id="msg_1", status=message_pb2.MESSAGE_STATUS_COMPLETED)
    done.content.add().text.value = "Hello"
    return _events(
        (E.RUN_EVENT_TYPE_THREAD_CREATED, None),
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, _run(E.RUN_STATUS_IN_PROGRESS)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_pb2.RunStep(id="step_1")),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, message),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS, message),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _text_delta("Hel")),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _text_delta("lo")),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, done),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, run_pb2.RunStep(id="step_1")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED, _run(end, prompt=7, completion=2, completed_at=5)),
        (E.RUN_EVENT_TYPE_DONE, None),
        (E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, _run(E.RUN_STATUS_QUEUED)),  # a later segment: not ours
    )


def test_a_text_log_renders_openai_order_numbered_from_zero():
    events, response = render_all(BASE, _text_log())
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[2]["item"] == {
        "id": "msg_1",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hel", "lo"]
    assert events[6]["text"] == "Hello"
    assert response["status"] == "completed" and response["completed_at"] == 5
    assert response["output"][0]["content"][0]["text"] == "Hello"
    assert response["usage"]["input_tokens"] == 7 and response["usage"]["total_tokens"] == 9
    assert events[-1]["response"] == response


def test_rendering_is_deterministic_so_a_resume_is_a_suffix():
    first, _ = render_all(BASE, _text_log())
    again, _ = render_all(BASE, _text_log())
    assert first == again
    resumed = [e for e in again if e["sequence_number"] > 4]
    assert first[5:] == resumed


def test_background_responses_are_queued_first():
    events, _ = render_all({**BASE, "background": True}, _text_log())
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued"


def test_failed_and_incomplete_runs_close_the_response():
    log = _text_log()
    failed = _run(E.RUN_STATUS_FAILED, failed_at=3)
    failed.last_error.code = common_pb2.LAST_ERROR_CODE_RATE_LIMIT_EXCEEDED
    failed.last_error.message = "slow down"
    log[11].run.CopyFrom(failed)
    events, response = render_all(BASE, log)
    assert events[-1]["type"] == "response.failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    incomplete = _run(E.RUN_STATUS_INCOMPLETE)
    incomplete.incomplete_details.reason = E.RUN_INCOMPLETE_REASON_MAX_COMPLETION_TOKENS
    log[11].run.CopyFrom(incomplete)
    events, response = render_all(BASE, log)
    assert events[-1]["type"] == "response.incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def _call_delta(index, call_id=None, name=None, arguments=None):
    event = run_pb2.RunStepDeltaEvent(id="step_2")
    call = event.delta.step_details.tool_calls.items.add(index=index)
    if call_id:
        call.id = call_id
    call.function.SetInParent()
    if name:
        call.function.name = name
    if arguments is not None:
        call.function.arguments = arguments
    return event


def test_function_calls_stream_arguments_and_complete_the_response():
    waiting = _run(E.RUN_STATUS_REQUIRES_ACTION, prompt=3, completion=1)
    pending = waiting.required_action.submit_tool_outputs.tool_calls.add(id="call_a")
    pending.function.name, pending.function.arguments = "get_weather", '{"city":"Paris"}'
    log = _events(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, _run(E.RUN_STATUS_IN_PROGRESS)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_pb2.RunStep(id="step_2")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, _call_delta(0, "call_a", "get_weather", "")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, _call_delta(0, arguments='{"city"')),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, _call_delta(0, arguments=':"Paris"}')),
        (E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION, waiting),
        (E.RUN_EVENT_TYPE_DONE, None),
    )
    events, response = render_all(BASE, log)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    item = response["output"][0]
    assert item == {
        "id": "fc_a",
        "type": "function_call",
        "status": "completed",
        "arguments": '{"city":"Paris"}',
        "call_id": "call_a",
        "name": "get_weather",
    }
    assert response["status"] == "completed"


def test_a_continuation_segment_counts_only_its_own_usage():
    before = _run(E.RUN_STATUS_QUEUED, prompt=10, completion=4)
    log = _events(
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, run_pb2.RunStep(id="step_2")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, before),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, before),
        (E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED, _run(E.RUN_STATUS_COMPLETED, prompt=25, completion=6)),
        (E.RUN_EVENT_TYPE_DONE, None),
    )
    events, response = render_all(BASE, log)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert response["usage"]["input_tokens"] == 15 and response["usage"]["output_tokens"] == 2


def test_a_renderer_reads_nothing_after_its_segment():
    renderer = Renderer(BASE)
    for event in _text_log():
        renderer.feed(event)
    assert renderer.ended and renderer.status == "completed"


def code_delta(
    code: str = "", call_id: str = "", outputs: tuple = (), step_id: str = "step_1"
) -> run_pb2.RunStepDeltaEvent:
    """A code_interpreter step delta: code, the call's id, outputs (logs, or a "cfile_" image)."""
    delta = run_pb2.RunStepDeltaEvent(id=step_id)
    call = delta.delta.step_details.tool_calls.items.add(index=0)
    if call_id:
        call.id = call_id
    call.code_interpreter.input = code
    for position, output in enumerate(outputs):
        item = call.code_interpreter.outputs.add(index=position)
        if output.startswith("cfile_"):
            item.image.file_id = output
        else:
            item.logs = output
    return delta


def _code_log(ran: bool):
    end = _run(E.RUN_STATUS_COMPLETED if ran else E.RUN_STATUS_CANCELLED)
    return _events(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, _run(E.RUN_STATUS_IN_PROGRESS)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, code_delta(call_id="call_7")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, code_delta("print(")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, code_delta("1)")),
        *([(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, code_delta(outputs=("1\n", "cfile_9")))] if ran else []),
        (E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED if ran else E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED, end),
        (E.RUN_EVENT_TYPE_DONE, None),
    )


def test_a_code_call_renders_as_a_code_interpreter_call_item_with_its_events_in_openai_order():
    events, response = render_all(BASE, _code_log(ran=True), ["code_interpreter_call.outputs"], "cntr_1")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"] == {
        "id": "ci_7",
        "type": "code_interpreter_call",
        "status": "in_progress",
        "code": "",
        "outputs": None,
        "container_id": "cntr_1",
    }
    assert events[6]["code"] == "print(1)"
    (item,) = response["output"]
    assert item == events[9]["item"]
    assert item["status"] == "completed" and item["code"] == "print(1)"
    assert item["outputs"] == [
        {"type": "logs", "logs": "1\n"},
        {"type": "image", "url": "/v1/containers/cntr_1/files/cfile_9/content"},
    ]
    # without include, the outputs are null
    _, plain = render_all(BASE, _code_log(ran=True), container_id="cntr_1")
    assert plain["output"][0]["outputs"] is None and plain["output"][0]["status"] == "completed"


def test_a_code_call_whose_response_ended_before_it_ran_is_incomplete():
    events, response = render_all(BASE, _code_log(ran=False), ["code_interpreter_call.outputs"], "cntr_1")
    assert [e["type"] for e in events][-2:] == ["response.output_item.done", "response.failed"]
    assert response["output"][0]["status"] == "incomplete" and response["status"] == "cancelled"


def test_a_link_to_a_container_file_is_a_container_file_citation():
    text = "See sandbox:/mnt/data/out.csv now"
    done = message_pb2.Message(id="msg_1", status=message_pb2.MESSAGE_STATUS_COMPLETED)
    part = done.content.add().text
    part.value = text
    annotation = part.annotations.add(text="sandbox:/mnt/data/out.csv", start_index=4, end_index=29)
    annotation.file_path.file_id = "cfile_2"
    log = _events(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, message_pb2.Message(id="msg_1")),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, done),
        (E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED, _run(E.RUN_STATUS_COMPLETED)),
    )
    events, response = render_all(BASE, log, container_id="cntr_1")
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_1",
        "file_id": "cfile_2",
        "filename": "out.csv",
        "start_index": 4,
        "end_index": 29,
    }
    assert response["output"][0]["content"][0]["annotations"] == [citation]
    assert [e["annotation"] for e in events if e["type"] == "response.output_text.annotation.added"] == [citation]
    assert text[4:29] == "sandbox:/mnt/data/out.csv"
