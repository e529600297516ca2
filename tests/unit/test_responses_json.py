"""The exact OpenAI JSON of typed Responses renderings (service/responses/render.py through the
edge's codec), pinned against golden files. The golden files were written by the renderer that
built OpenAI's JSON as dicts (before the typed ResponseEvent), so they prove the typed events
and responses reach the client as the same JSON: same keys, nulls where OpenAI sends null."""

import json
from pathlib import Path

import pytest
from assistd.v1 import common_pb2, message_pb2, response_item_pb2, run_pb2
from google.protobuf import struct_pb2

from edge import codec
from edge.responses import event_json
from service.protojson import struct_to_python
from service.responses import request as requests
from service.responses.conversations import message_item
from service.responses.render import render_all, with_search_results
from service.responses.typed import response_from_json
from tests.unit.test_responses_render import code_delta

E = run_pb2
GOLDEN = Path(__file__).parent / "golden" / "responses"
BODY = {
    "model": "m",
    "input": "hi",
    "instructions": "Be brief.",
    "metadata": {"k": "v"},
    "temperature": 0.5,
    "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 3},
    ],
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}},
    "reasoning": {"effort": "low"},
    "include": ["file_search_call.results", "code_interpreter_call.outputs"],
}


def base() -> dict:
    return requests.base("resp_1", 100, requests.parse(dict(BODY)))


def _run(status, prompt=0, completion=0, **fields) -> run_pb2.Run:
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=status, **fields)
    run.usage.CopyFrom(common_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion))
    return run


def _log(*pairs) -> list[run_pb2.RunEvent]:
    events = []
    for i, (kind, field, payload) in enumerate(pairs, start=1):
        event = run_pb2.RunEvent(sequence_number=i, event=kind)
        if payload is not None:
            getattr(event, field).CopyFrom(payload)
        events.append(event)
    return events


def _search_step(done: bool) -> tuple:
    step = run_pb2.RunStepDeltaEvent(id="step_1") if not done else run_pb2.RunStep(id="step_1")
    calls = step.delta.step_details.tool_calls if not done else step.step_details.tool_calls
    call = calls.items.add(id="call_s1") if done else calls.items.add(index=0, id="call_s1")
    call.file_search.SetInParent()
    if done:
        result = call.file_search.results.add(file_id="file_1", file_name="paris.txt", score=0.75)
        result.content.add(text="Paris is the capital.")
        return (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, "run_step", step)
    return (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, "run_step_delta", step)


def search_log() -> tuple[list[run_pb2.RunEvent], list[run_pb2.RunStep]]:
    """A file_search call, then a cited answer."""
    message = message_pb2.Message(id="msg_1", status=message_pb2.MESSAGE_STATUS_IN_PROGRESS)
    done = message_pb2.Message(id="msg_1", status=message_pb2.MESSAGE_STATUS_COMPLETED)
    text = done.content.add().text
    text.value = "Paris【0†paris.txt】."
    text.annotations.add(text="【0†paris.txt】", start_index=5, end_index=18).file_citation.file_id = "file_1"
    delta = message_pb2.MessageDeltaEvent(id="msg_1")
    delta.delta.content.add(index=0).text.value = "Paris"
    searched = _search_step(True)
    log = _log(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, "run", _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, "run", _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, "run", _run(E.RUN_STATUS_IN_PROGRESS)),
        _search_step(False),
        searched,
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, "message", message),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, "message_delta", delta),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, "message", done),
        (E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED, "run", _run(E.RUN_STATUS_COMPLETED, 9, 3, completed_at=105)),
        (E.RUN_EVENT_TYPE_DONE, None, None),
    )
    return log, [searched[2]]


def _call_delta(index, call_id="", name="", arguments="") -> tuple:
    event = run_pb2.RunStepDeltaEvent(id="step_2")
    call = event.delta.step_details.tool_calls.items.add(index=index)
    if call_id:
        call.id = call_id
    call.function.SetInParent()
    call.function.name, call.function.arguments = name, arguments
    return (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, "run_step_delta", event)


def function_log() -> list[run_pb2.RunEvent]:
    """A function call: the response ends waiting for its output."""
    waiting = _run(E.RUN_STATUS_REQUIRES_ACTION, prompt=3, completion=1)
    pending = waiting.required_action.submit_tool_outputs.tool_calls.add(id="call_a")
    pending.function.name, pending.function.arguments = "get_weather", '{"city":"Paris"}'
    return _log(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, "run", _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, "run", _run(E.RUN_STATUS_IN_PROGRESS)),
        _call_delta(0, "call_a", "get_weather"),
        _call_delta(0, arguments='{"city"'),
        _call_delta(0, arguments=':"Paris"}'),
        (E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION, "run", waiting),
        (E.RUN_EVENT_TYPE_DONE, None, None),
    )


def _code_delta(code="", call_id="", outputs=()) -> tuple:
    delta = code_delta(code, call_id, outputs, step_id="step_3")
    return (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, "run_step_delta", delta)


def code_then_failure_log() -> list[run_pb2.RunEvent]:
    """A code_interpreter call that ran, a second that did not, and a failed end."""
    failed = _run(E.RUN_STATUS_FAILED, 4, 2, failed_at=9)
    failed.last_error.code = common_pb2.LAST_ERROR_CODE_RATE_LIMIT_EXCEEDED
    failed.last_error.message = "slow down"
    second = run_pb2.RunStepDeltaEvent(id="step_4")
    second.delta.step_details.tool_calls.items.add(index=0, id="call_c2").code_interpreter.input = "x"
    return _log(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, "run", _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, "run", _run(E.RUN_STATUS_IN_PROGRESS)),
        _code_delta(call_id="call_c1"),
        _code_delta("print(1)"),
        _code_delta(outputs=("1\n", "cfile_9")),
        (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, "run_step_delta", second),
        (E.RUN_EVENT_TYPE_THREAD_RUN_FAILED, "run", failed),
        (E.RUN_EVENT_TYPE_DONE, None, None),
    )


def incomplete_log() -> list[run_pb2.RunEvent]:
    """A message cut off at max_output_tokens."""
    message = message_pb2.Message(id="msg_2", status=message_pb2.MESSAGE_STATUS_IN_PROGRESS)
    done = message_pb2.Message(id="msg_2", status=message_pb2.MESSAGE_STATUS_INCOMPLETE)
    done.content.add().text.value = "Hel"
    end = _run(E.RUN_STATUS_INCOMPLETE, 2, 1, completed_at=7)
    end.incomplete_details.reason = E.RUN_INCOMPLETE_REASON_MAX_COMPLETION_TOKENS
    return _log(
        (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, "run", _run(E.RUN_STATUS_QUEUED)),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, "message", message),
        (E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE, "message", done),
        (E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE, "run", end),
        (E.RUN_EVENT_TYPE_DONE, None, None),
    )


def cases() -> dict:
    """name -> (log, include, container id, steps for with_search_results)."""
    searched, steps = search_log()
    return {
        "file_search": (searched, ["file_search_call.results"], "", steps),
        "function_call": (function_log(), [], "", None),
        "code_interpreter": (code_then_failure_log(), ["code_interpreter_call.outputs"], "cntr_1", None),
        "incomplete": (incomplete_log(), [], "", None),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_typed_rendering_is_the_golden_json(name):
    log, include, container_id, steps = cases()[name]
    events, response = render_all(base(), log, include, container_id)
    if steps is not None:
        with_search_results(response, steps)
    got = {"events": [event_json(event) for event in events], "response": codec.render(response)}
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert got == golden  # a null OpenAI sends that went missing, or one too many, fails this too


@pytest.mark.parametrize("name", sorted(cases()))
def test_a_response_kept_as_json_by_an_older_version_reads_as_the_same_typed_response(name):
    """StoredResponse.final (a Struct of OpenAI's JSON) from records written before the typed
    Response is read with response_from_json: it must give back the very same JSON."""
    golden = json.loads((GOLDEN / f"{name}.json").read_text())["response"]
    kept = struct_pb2.Struct()
    kept.update(golden)
    assert codec.render(response_from_json(struct_to_python(kept))) == golden


def test_the_codec_reads_an_item_union_named_by_its_members():
    """A `(json_inline)` oneof whose members have no `type` field is read by the member's name."""
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}],
    }
    parsed = codec.parse(item, response_item_pb2.ResponseItem)
    assert parsed.message.content[0].output_text.text == "hi"
    assert codec.render(parsed) == item
    with pytest.raises(codec.CodecError) as error:
        codec.parse({**item, "type": "mystery"}, response_item_pb2.ResponseItem)
    assert error.value.param == "type" and "'message'" in error.value.message


def test_a_conversation_item_is_the_json_it_was():
    """Conversation items (thread messages) are typed ResponseItems now; their JSON as before."""
    user = message_pb2.Message(
        id="msg_u", role=message_pb2.MESSAGE_ROLE_USER, status=message_pb2.MESSAGE_STATUS_COMPLETED
    )
    user.content.add().text.value = "look"
    user.content.add().image_url.url = "https://example.com/a.png"
    assistant = message_pb2.Message(
        id="msg_a", role=message_pb2.MESSAGE_ROLE_ASSISTANT, status=message_pb2.MESSAGE_STATUS_INCOMPLETE
    )
    assistant.content.add().text.value = "a cat"
    assistant.content.add().refusal = "no more"
    assert codec.render(message_item(user)) == {
        "id": "msg_u",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        ],
    }
    assert codec.render(message_item(assistant)) == {
        "id": "msg_a",
        "type": "message",
        "status": "incomplete",
        "role": "assistant",
        "content": [
            {"type": "output_text", "text": "a cat", "annotations": [], "logprobs": []},
            {"type": "refusal", "refusal": "no more"},
        ],
    }
