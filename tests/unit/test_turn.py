"""One model turn: provider deltas become a message, a tool_calls step, their events and usage."""

from assistd.v1 import run_pb2

from service.engine.tool_prompt import CallParser
from service.engine.turn import Turn
from service.llm import ChatDelta, ToolCallFragment
from service.retrieval import citations

E = run_pb2


def _turn(searching=False):
    emitted: list = []
    run = run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1")
    return Turn(run, lambda event, obj: emitted.append((event, _copy(obj))), searching), emitted


def _copy(obj):
    clone = type(obj)()
    clone.CopyFrom(obj)
    return clone


async def _deltas(*deltas):
    for delta in deltas:
        yield delta


def _frag(index, id=None, name=None, arguments=None):
    return ToolCallFragment(index=index, id=id, name=name, arguments=arguments)


async def test_interleaved_parallel_call_deltas_build_whole_calls_in_order():
    turn, emitted = _turn()
    await turn.read(
        _deltas(
            ChatDelta(tool_calls=[_frag(0, "p0", "weather", '{"ci'), _frag(1, "p1", "time", "")]),
            ChatDelta(tool_calls=[_frag(1, arguments='{"tz": "UTC"}'), _frag(0, arguments='ty": "Oslo"}')]),
            ChatDelta(finish_reason="tool_calls"),
        )
    )
    calls = turn.tool_step.step_details.tool_calls.items
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("weather", '{"city": "Oslo"}'),
        ("time", '{"tz": "UTC"}'),
    ]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    assert turn.finish_reason == "tool_calls" and turn.message is None
    kinds = [event for event, _ in emitted]
    assert kinds[:2] == [E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS]
    deltas = [
        obj.delta.step_details.tool_calls.items[0]
        for event, obj in emitted
        if event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA
    ]
    assert [(d.index, d.id, d.function.name) for d in deltas[:2]] == [
        (0, calls[0].id, "weather"),
        (1, calls[1].id, "time"),
    ]
    assert [d.id for d in deltas[2:]] == ["", ""]  # later fragments carry only arguments
    assert "".join(d.function.arguments for d in deltas if d.index == 0) == '{"city": "Oslo"}'


async def test_text_then_calls_completes_the_message_before_the_tool_step_begins():
    turn, emitted = _turn()
    await turn.read(
        _deltas(ChatDelta(text="Let me "), ChatDelta(text="look."), ChatDelta(tool_calls=[_frag(0, "x", "f", "{}")]))
    )
    kinds = [event for event, _ in emitted]
    assert kinds == [
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS,
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED,
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS,
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA,
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA,
        E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA,
    ]
    assert turn.message_settled and turn.message.content[0].text.value == "Let me look."
    assert turn.message_step.step_details.message_creation.message_id == turn.message.id
    assert turn.steps() == [turn.message_step, turn.tool_step]


async def test_usage_comes_from_the_usage_chunk_and_deltas_carry_the_text():
    turn, emitted = _turn()
    await turn.read(
        _deltas(
            ChatDelta(text="a"),
            ChatDelta(text="b", finish_reason="stop"),
            ChatDelta(prompt_tokens=12, completion_tokens=2),
        )
    )
    assert (turn.usage().prompt_tokens, turn.usage().completion_tokens, turn.usage().total_tokens) == (12, 2, 14)
    texts = [
        obj.delta.content[0].text.value for event, obj in emitted if event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
    ]
    assert texts == ["a", "b"] and turn.text == "ab" and turn.finish_reason == "stop"


async def test_whole_parallel_calls_at_one_provider_index_stay_separate():
    turn, _ = _turn()
    await turn.read(_deltas(ChatDelta(tool_calls=[_frag(0, "a", "f", "{}"), _frag(0, "b", "g", "{}")])))
    assert [c.function.name for c in turn.tool_step.step_details.tool_calls.items] == ["f", "g"]


async def test_file_search_calls_are_kept_aside_and_never_become_function_calls():
    turn, emitted = _turn(searching=True)
    await turn.read(
        _deltas(
            ChatDelta(tool_calls=[_frag(0, "s", citations.FUNCTION_NAME, '{"queries": ')]),
            ChatDelta(tool_calls=[_frag(0, arguments='["zebras"]}')]),
        )
    )
    assert turn.search_args == {0: '{"queries": ["zebras"]}'} and turn.tool_step is None and emitted == []


async def test_a_prompt_based_model_answer_becomes_tool_calls():
    turn, _ = _turn()
    answer = '{"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}'
    await turn.read(_deltas(ChatDelta(text=answer[:10]), ChatDelta(text=answer[10:])), CallParser({"add"}))
    assert turn.message is None
    call = turn.tool_step.step_details.tool_calls.items[0]
    assert call.function.name == "add" and call.function.arguments == '{"a": 1}'


def test_fragments_join_their_call_and_a_new_id_at_the_same_index_is_a_new_call():
    turn, _ = _turn()
    first = turn.call_key(_frag(0, "a", "f", ""))
    assert turn.call_key(_frag(0, arguments='{"x"')) == first
    second = turn.call_key(_frag(0, "b", "f", "{}"))  # no index sent: 0 again
    assert second != first
    assert turn.call_key(_frag(1, name="g")) == (1, None)


def _streamed_code(emitted) -> str:
    return "".join(
        call.code_interpreter.input
        for event, obj in emitted
        if event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA
        for call in obj.delta.step_details.tool_calls.items
        if call.HasField("code_interpreter")
    )


async def test_python_calls_become_code_interpreter_calls_whose_code_streams_beside_functions():
    run = run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1")
    emitted: list = []
    turn = Turn(run, lambda event, obj: emitted.append((event, _copy(obj))), coding=True)
    await turn.read(
        _deltas(
            ChatDelta(tool_calls=[_frag(0, "p0", "python", '{"co'), _frag(1, "p1", "lookup", "{}")]),
            ChatDelta(tool_calls=[_frag(0, arguments='de": "print(\\"hi\\")\\nx')]),
            ChatDelta(tool_calls=[_frag(0, arguments=' = 1"}')]),
        )
    )
    code_call, function_call = turn.tool_step.step_details.tool_calls.items
    assert code_call.code_interpreter.input == 'print("hi")\nx = 1' == _streamed_code(emitted)
    assert function_call.function.name == "lookup" and turn.has_function_calls()
    assert list(turn.code_args) == [0]


async def test_bare_code_from_a_model_comes_whole_at_the_end_of_the_turn():
    run = run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1")
    emitted: list = []
    turn = Turn(run, lambda event, obj: emitted.append((event, _copy(obj))), coding=True)
    await turn.read(_deltas(ChatDelta(tool_calls=[_frag(0, "p0", "python", "print(1)")])))
    assert turn.tool_step.step_details.tool_calls.items[0].code_interpreter.input == "print(1)"
    assert _streamed_code(emitted) == "print(1)" and not turn.has_function_calls()


async def test_without_code_interpreter_a_python_call_is_the_clients_function():
    turn, _ = _turn()
    await turn.read(_deltas(ChatDelta(tool_calls=[_frag(0, "p0", "python", '{"code": "1"}')])))
    assert turn.tool_step.step_details.tool_calls.items[0].function.name == "python" and not turn.code_args


async def test_built_in_calls_past_the_limit_are_ignored_with_their_later_fragments():
    """max_tool_calls: with one built-in call left, the second search of a turn is dropped whole
    (its argument fragments too), and a function call beside it is kept."""
    run = run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1")
    turn = Turn(run, lambda event, obj: None, searching=True, built_in_calls_left=1)
    name = citations.FUNCTION_NAME
    await turn.read(
        _deltas(
            ChatDelta(tool_calls=[_frag(0, "p0", name, '{"queries": '), _frag(1, "p1", name, '{"queries": ')]),
            ChatDelta(tool_calls=[_frag(2, "p2", "weather", '{"city": "Oslo"}')]),
            ChatDelta(tool_calls=[_frag(1, arguments='["b"]}'), _frag(0, arguments='["a"]}')]),
            ChatDelta(finish_reason="tool_calls"),
        )
    )
    assert turn.search_args == {0: '{"queries": ["a"]}'}
    assert turn.tool_step is not None
    (call,) = turn.tool_step.step_details.tool_calls.items
    assert call.function.name == "weather" and call.function.arguments == '{"city": "Oslo"}'
