"""The Responses rendering of a run's event log (service/responses/render.py): pure, so fed
hand-made RunEvents."""

from assistd.v1 import common_pb2, message_pb2, run_pb2

from service.responses.render import Renderer, render_all

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
