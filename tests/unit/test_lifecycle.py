"""The run status machine: every transition, and what it does to the turn's steps and message."""

import pytest
from assistd.v1 import common_pb2, message_pb2, run_pb2, thread_pb2

from service.engine import lifecycle
from service.engine.lifecycle import SNAPSHOT, Outcome
from service.engine.turn import Turn
from service.errors import FailedPrecondition, InvalidArgument
from service.llm import ToolCallFragment

E = run_pb2
M = message_pb2
RATE_LIMITED = common_pb2.LAST_ERROR_CODE_RATE_LIMIT_EXCEEDED
NOW = 1_700_000_000


def _run(status=E.RUN_STATUS_IN_PROGRESS) -> run_pb2.Run:
    return run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1", status=status)


def _turn(run, text="", calls=0, settled=False, prompt=0, completion=0) -> Turn:
    """A turn that wrote text and/or `calls` function calls, with what it emitted recorded."""
    emitted: list = []
    turn = Turn(run, lambda event, obj: emitted.append((event, obj)))
    turn.add_text(text)
    for i in range(calls):
        turn.add_call_fragment(ToolCallFragment(index=i, id=f"p{i}", name=f"f{i}", arguments="{}"))
    if settled:
        turn.settle_message()
    turn.prompt_tokens, turn.completion_tokens = prompt, completion
    turn.emitted = emitted  # type: ignore[attr-defined]
    return turn


def _events(effects) -> list[int]:
    return [effect.event for effect in effects]


def test_a_new_run_is_created_then_queued_and_a_new_thread_comes_first():
    run, thread = _run(E.RUN_STATUS_QUEUED), thread_pb2.Thread(id="thread_1")
    assert _events(lifecycle.created(run)) == [E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED]
    effects = lifecycle.created(run, thread)
    assert effects[0] == (E.RUN_EVENT_TYPE_THREAD_CREATED, thread) and len(effects) == 3


def test_begin_stamps_started_at_only_the_first_time():
    run = _run(E.RUN_STATUS_QUEUED)
    assert _events(lifecycle.begin(run, NOW)) == [E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS]
    assert run.status == E.RUN_STATUS_IN_PROGRESS and run.started_at == NOW
    run.status = E.RUN_STATUS_QUEUED  # resumed after tool outputs
    lifecycle.begin(run, NOW + 50)
    assert run.started_at == NOW


def test_completed_completes_the_message_and_its_step_and_books_usage_on_the_step():
    run = _run()
    turn = _turn(run, "hello", prompt=10, completion=5)
    effects = lifecycle.conclude(run, turn, lifecycle.COMPLETED, NOW, 600)
    assert _events(effects) == [
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED,
        E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED,
    ]
    assert turn.message.status == message_pb2.MESSAGE_STATUS_COMPLETED and turn.message.completed_at == NOW
    assert turn.message.content[0].text.value == "hello"
    assert turn.message_step.status == E.RUN_STEP_STATUS_COMPLETED and turn.message_step.completed_at == NOW
    assert turn.message_step.usage.total_tokens == 15
    assert run.status == E.RUN_STATUS_COMPLETED and run.completed_at == NOW
    assert (run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.total_tokens) == (10, 5, 15)
    assert not run.HasField("expires_at") and not run.HasField("required_action")


def test_requires_action_keeps_the_tool_step_open_and_lists_its_calls():
    run = _run()
    turn = _turn(run, calls=2, prompt=7, completion=3)
    effects = lifecycle.conclude(run, turn, lifecycle.REQUIRES_ACTION, NOW, 600)
    assert effects[0] == (SNAPSHOT, turn.tool_step)  # stored with whole arguments, no event
    assert _events(effects)[1:] == [E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION]
    assert turn.tool_step.status == E.RUN_STEP_STATUS_IN_PROGRESS and turn.tool_step.usage.total_tokens == 10
    assert run.status == E.RUN_STATUS_REQUIRES_ACTION and run.expires_at == NOW + 600
    pending = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in pending] == ["f0", "f1"]
    assert [c.id for c in pending] == [c.id for c in turn.tool_step.step_details.tool_calls.items]


def test_text_before_calls_is_a_settled_message_that_an_end_leaves_alone():
    run = _run()
    turn = _turn(run, "let me check", calls=1)
    kinds = [event for event, _ in turn.emitted]
    completed_at = kinds.index(E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED)
    assert kinds[completed_at + 1] == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED  # the message step ends first
    assert kinds.index(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA) > completed_at + 1
    effects = lifecycle.conclude(run, turn, lifecycle.CANCELLED, NOW, 600)
    assert _events(effects) == [E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED, E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED]
    assert turn.message.status == message_pb2.MESSAGE_STATUS_COMPLETED


@pytest.mark.parametrize(
    "outcome, step_event, step_status, reason",
    [
        (
            lifecycle.CANCELLED,
            E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED,
            E.RUN_STEP_STATUS_CANCELLED,
            M.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED,
        ),
        (
            lifecycle.failed("server_error", "boom"),
            E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED,
            E.RUN_STEP_STATUS_FAILED,
            M.MESSAGE_INCOMPLETE_REASON_RUN_FAILED,
        ),
        (
            lifecycle.EXPIRED,
            E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED,
            E.RUN_STEP_STATUS_EXPIRED,
            M.MESSAGE_INCOMPLETE_REASON_RUN_EXPIRED,
        ),
        (
            lifecycle.incomplete("max_completion_tokens"),
            E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED,
            E.RUN_STEP_STATUS_COMPLETED,
            M.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS,
        ),
    ],
)
def test_an_unsuccessful_end_leaves_the_message_incomplete_with_its_reason(outcome, step_event, step_status, reason):
    run = _run()
    turn = _turn(run, "partial")
    effects = lifecycle.conclude(run, turn, outcome, NOW, 600)
    assert _events(effects) == [
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE,
        step_event,
        lifecycle.STATUS_EVENT[outcome.status],
    ]
    assert turn.message.status == message_pb2.MESSAGE_STATUS_INCOMPLETE
    assert turn.message.incomplete_details.reason == reason and turn.message.incomplete_at == NOW
    assert turn.message.content[0].text.value == "partial"
    assert turn.message_step.status == step_status
    assert run.status == outcome.status


def test_failed_carries_last_error_on_the_run_and_its_open_steps():
    run = _run()
    turn = _turn(run, calls=1)
    lifecycle.conclude(run, turn, lifecycle.failed("rate_limit_exceeded", "slow down"), NOW, 600)
    assert (run.last_error.code, run.last_error.message, run.failed_at) == (RATE_LIMITED, "slow down", NOW)
    assert turn.tool_step.status == E.RUN_STEP_STATUS_FAILED and turn.tool_step.last_error.code == RATE_LIMITED


def test_incomplete_cancels_calls_that_were_cut_off_and_records_the_reason():
    run = _run()
    turn = _turn(run, calls=1)
    effects = lifecycle.conclude(run, turn, lifecycle.incomplete("max_completion_tokens"), NOW, 600)
    assert _events(effects) == [E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED, E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE]
    assert run.incomplete_details.reason == E.RUN_INCOMPLETE_REASON_MAX_COMPLETION_TOKENS and run.completed_at == NOW


def test_cancelled_or_expired_stamp_their_time_and_clear_a_pending_action():
    for outcome, stamp in ((lifecycle.CANCELLED, "cancelled_at"), (lifecycle.EXPIRED, None)):
        run = _run(E.RUN_STATUS_REQUIRES_ACTION)
        run.required_action.submit_tool_outputs.SetInParent()
        run.expires_at = NOW
        lifecycle.conclude(run, Turn(run), outcome, NOW, 600)
        assert run.status == outcome.status and not run.HasField("required_action") and not run.HasField("expires_at")
        if stamp:
            assert getattr(run, stamp) == NOW


def test_an_empty_turn_just_moves_the_run():
    run = _run()
    assert _events(lifecycle.conclude(run, Turn(run), lifecycle.COMPLETED, NOW, 600)) == [
        E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED
    ]


def test_cancelling_a_working_run_and_refusing_an_ended_one():
    run = _run(E.RUN_STATUS_QUEUED)
    assert _events(lifecycle.cancelling(run)) == [E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING]
    assert run.status == E.RUN_STATUS_CANCELLING
    for status in (*lifecycle.TERMINAL, E.RUN_STATUS_CANCELLING):
        with pytest.raises(FailedPrecondition, match="Cannot cancel run with status"):
            lifecycle.cancelling(_run(status))


def test_tool_outputs_must_answer_each_pending_call_exactly_once():
    run = _run(E.RUN_STATUS_REQUIRES_ACTION)
    for call_id in ("call_a", "call_b"):
        run.required_action.submit_tool_outputs.tool_calls.add(id=call_id)
    out = run_pb2.ToolOutput
    with pytest.raises(InvalidArgument) as info:
        lifecycle.outputs_by_call(run, [])
    assert info.value.param == "tool_outputs"
    cases = [
        ([out(tool_call_id="call_a", output="1")], "tool_outputs"),
        ([out(tool_call_id="call_x", output="1")], "tool_outputs[0].tool_call_id"),
        ([out(output="1")], "tool_outputs[0].tool_call_id"),
        ([out(tool_call_id="call_a"), out(tool_call_id="call_a")], "tool_outputs[1].tool_call_id"),
    ]
    for outputs, param in cases:
        with pytest.raises(InvalidArgument) as info:
            lifecycle.outputs_by_call(run, outputs)
        assert info.value.param == param
    both = [out(tool_call_id="call_b", output="2"), out(tool_call_id="call_a", output="1")]
    assert lifecycle.outputs_by_call(run, both) == {"call_a": "1", "call_b": "2"}


def test_accepting_outputs_completes_the_step_and_queues_the_run_again():
    run = _run()
    turn = _turn(run, calls=1)
    lifecycle.conclude(run, turn, lifecycle.REQUIRES_ACTION, NOW, 600)
    call_id = turn.tool_step.step_details.tool_calls.items[0].id
    effects = lifecycle.accept_tool_outputs(run, turn.tool_step, {call_id: "42"}, NOW + 1)
    assert _events(effects) == [E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED]
    assert turn.tool_step.step_details.tool_calls.items[0].function.output == "42"
    assert turn.tool_step.status == E.RUN_STEP_STATUS_COMPLETED and turn.tool_step.completed_at == NOW + 1
    assert run.status == E.RUN_STATUS_QUEUED and not run.HasField("required_action")


def test_cut_short_fails_a_working_run_only():
    for status in (E.RUN_STATUS_QUEUED, E.RUN_STATUS_IN_PROGRESS, E.RUN_STATUS_CANCELLING):
        run = _run(status)
        assert _events(lifecycle.cut_short(run, NOW)) == [E.RUN_EVENT_TYPE_THREAD_RUN_FAILED]
        assert run.last_error.code == common_pb2.LAST_ERROR_CODE_SERVER_ERROR and run.failed_at == NOW
    for status in (*lifecycle.TERMINAL, E.RUN_STATUS_REQUIRES_ACTION):
        run = _run(status)
        assert lifecycle.cut_short(run, NOW) == [] and run.status == status


def test_a_turn_rebuilt_from_the_store_concludes_its_open_steps_and_message():
    run = _run(E.RUN_STATUS_REQUIRES_ACTION)
    step = run_pb2.RunStep(id="step_1", type=E.RUN_STEP_TYPE_MESSAGE_CREATION, status=E.RUN_STEP_STATUS_IN_PROGRESS)
    done = run_pb2.RunStep(id="step_0", type=E.RUN_STEP_TYPE_TOOL_CALLS, status=E.RUN_STEP_STATUS_COMPLETED)
    message = message_pb2.Message(id="msg_1")
    message.content.add().text.value = "so far"
    turn = Turn.unfinished(run, [done, step], message)
    assert turn.tool_step is None and turn.message_step is step and turn.text == "so far"
    effects = lifecycle.conclude(run, turn, Outcome(E.RUN_STATUS_EXPIRED), NOW, 600)
    assert _events(effects)[0] == E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE
    assert [part.text.value for part in message.content] == ["so far"]  # written once, not doubled


def test_every_status_has_its_event_and_every_end_its_step_status():
    for status in run_pb2.RunStatus.values():
        if status != E.RUN_STATUS_UNSPECIFIED:
            assert status in lifecycle.STATUS_EVENT
    for status in (*lifecycle.TERMINAL, E.RUN_STATUS_REQUIRES_ACTION):
        assert lifecycle.STEP_STATUS_FOR_RUN[status] in lifecycle.STEP_END
    assert lifecycle.status_name(E.RUN_STATUS_REQUIRES_ACTION) == "requires_action"


def test_built_in_calls_left_counts_searches_and_code_of_every_step_but_not_functions():
    run = run_pb2.Run(id="run_1")
    assert lifecycle.built_in_calls_left(run, []) is None  # no max_tool_calls: no limit
    run.max_tool_calls = 3
    step = run_pb2.RunStep(type=run_pb2.RUN_STEP_TYPE_TOOL_CALLS)
    step.step_details.tool_calls.items.add().file_search.SetInParent()
    step.step_details.tool_calls.items.add().code_interpreter.SetInParent()
    step.step_details.tool_calls.items.add().function.name = "weather"
    assert lifecycle.built_in_calls_left(run, [step]) == 1
    assert lifecycle.built_in_calls_left(run, [step, step]) == 0  # never below 0
