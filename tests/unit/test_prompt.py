"""What the model is sent for a run: the thread and the run's tool turns in order, truncation, options."""

from assistd.v1 import message_pb2, run_pb2

from service import ids
from service.engine.prompt import build_messages, chat_request
from service.retrieval import citations

E = run_pb2


def _message(role, text) -> message_pb2.Message:
    message = message_pb2.Message(id=ids.new_id("msg_"), role=role)
    message.content.add().text.value = text
    return message


def _tool_step(name: str, arguments: str, output: str | None) -> run_pb2.RunStep:
    step = run_pb2.RunStep(id=ids.new_id("step_"), type=E.RUN_STEP_TYPE_TOOL_CALLS, status=E.RUN_STEP_STATUS_COMPLETED)
    call = step.step_details.tool_calls.items.add(id=ids.new_id("call_"))
    call.function.name, call.function.arguments = name, arguments
    if output is not None:
        call.function.output = output
    return step


def test_instructions_then_the_thread_and_tool_turns_in_the_order_they_happened():
    run = run_pb2.Run(instructions="Be brief.")
    question = _message(message_pb2.MESSAGE_ROLE_USER, "Weather in Paris?")
    step = _tool_step("get_weather", '{"city": "Paris"}', "18C")
    follow_up = _message(message_pb2.MESSAGE_ROLE_USER, "Thanks")
    chat = build_messages(run, [question, follow_up], [step])
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "user"]
    assert chat[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert chat[3] == {"role": "tool", "tool_call_id": step.step_details.tool_calls.items[0].id, "content": "18C"}


def test_text_before_calls_joins_the_calls_in_one_assistant_turn():
    run = run_pb2.Run()
    question = _message(message_pb2.MESSAGE_ROLE_USER, "Weather?")
    said = _message(message_pb2.MESSAGE_ROLE_ASSISTANT, "Let me check.")
    step = _tool_step("get_weather", "{}", "18C")
    chat = build_messages(run, [question, said], [step])
    assert [m["role"] for m in chat] == ["user", "assistant", "tool"]
    assert chat[1]["content"] == "Let me check." and chat[1]["tool_calls"]


def test_calls_still_waiting_for_outputs_and_empty_messages_are_left_out():
    run = run_pb2.Run()
    empty = message_pb2.Message(id=ids.new_id("msg_"), role=message_pb2.MESSAGE_ROLE_ASSISTANT)
    chat = build_messages(run, [_message(message_pb2.MESSAGE_ROLE_USER, "hi"), empty], [_tool_step("f", "{}", None)])
    assert chat == [{"role": "user", "content": "hi"}]


def test_last_messages_truncation_keeps_the_last_n_messages_and_their_tool_turns():
    run = run_pb2.Run()
    run.truncation_strategy.type = run_pb2.TRUNCATION_STRATEGY_TYPE_LAST_MESSAGES
    run.truncation_strategy.last_messages = 2
    old = [_message(message_pb2.MESSAGE_ROLE_USER, f"m{i}") for i in range(5)]
    step = _tool_step("f", "{}", "out")
    chat = build_messages(run, old, [step])
    assert [m.get("content") for m in chat] == ["m3", "m4", None, "out"]


def test_file_search_results_are_numbered_as_sources_across_steps():
    run = run_pb2.Run()
    steps = []
    for name in ("a.txt", "b.txt"):
        step = run_pb2.RunStep(
            id=ids.new_id("step_"), type=E.RUN_STEP_TYPE_TOOL_CALLS, status=E.RUN_STEP_STATUS_COMPLETED
        )
        result = step.step_details.tool_calls.items.add(id=ids.new_id("call_")).file_search.results.add(file_name=name)
        result.content.add(text=f"text of {name}")
        steps.append(step)
    chat = build_messages(run, [_message(message_pb2.MESSAGE_ROLE_USER, "q")], steps)
    outputs = [m["content"] for m in chat if m["role"] == "tool"]
    assert outputs[0].startswith("【0†a.txt】") and outputs[1].startswith("【1†b.txt】")


def test_the_request_carries_the_runs_options_and_the_search_function():
    run = run_pb2.Run(model="openai/x", temperature=0.2, max_completion_tokens=500, parallel_tool_calls=False)
    run.usage.completion_tokens = 120
    run.tools.add().function.name = "f"
    run.tool_choice.required.SetInParent()
    run.response_format.json_object.SetInParent()
    request, parser = chat_request(
        run, [{"role": "user", "content": "hi"}], searching=True, tool_prompt_models=frozenset()
    )
    assert parser is None
    assert [t["function"]["name"] for t in request.tools] == ["f", citations.FUNCTION_NAME]
    assert request.max_tokens == 380  # what the run has left
    assert (request.temperature, request.tool_choice, request.parallel_tool_calls) == (0.2, "required", False)
    assert request.response_format == {"type": "json_object"}


def test_a_model_without_native_tools_gets_them_in_the_prompt_and_a_parser():
    run = run_pb2.Run(model="plain")
    run.tools.add().function.name = "f"
    request, parser = chat_request(run, [{"role": "user", "content": "hi"}], False, frozenset({"plain"}))
    assert parser is not None and not request.tools
    assert '"tool_calls"' in request.messages[0]["content"]


def test_no_tools_no_tool_options():
    request, _ = chat_request(run_pb2.Run(model="m"), [], searching=False, tool_prompt_models=frozenset())
    assert request.tools == [] and request.tool_choice is None and request.parallel_tool_calls is None
