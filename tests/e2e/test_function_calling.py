"""Function calling and the run lifecycle around it, through the real openai SDK."""

import json

import httpx
import openai
import pytest
from openai import AssistantEventHandler

from tests.conftest import MODEL, Server, sse_frames

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores
ADAPTERS = True  # and through both provider adapters (lean and litellm)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current temperature of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
PARIS = '[call:get_weather:{"city": "Paris"}]'
OSLO = '[call:get_weather:{"city": "Oslo"}]'


@pytest.fixture
def tool_assistant(client, model):
    return client.beta.assistants.create(model=model, instructions="Use tools.", tools=[WEATHER, TIME])


def _answer(call) -> str:
    args = json.loads(call.function.arguments)
    return {"Paris": "18C", "Oslo": "4C"}.get(args.get("city"), "noon")


def test_the_seed_pattern_submit_from_the_handler_and_stream_the_answer(client, tool_assistant):
    """OpenAI's documented example: on requires_action, submit_tool_outputs_stream with a new handler."""
    printed: list[str] = []
    seen_done_calls = []

    class Handler(AssistantEventHandler):
        def on_tool_call_done(self, tool_call):
            seen_done_calls.append(tool_call)

        def on_event(self, event):
            if event.event == "thread.run.requires_action":
                outputs = [
                    {"tool_call_id": call.id, "output": _answer(call)}
                    for call in event.data.required_action.submit_tool_outputs.tool_calls
                ]
                with client.beta.threads.runs.submit_tool_outputs_stream(
                    thread_id=self.current_run.thread_id,
                    run_id=self.current_run.id,
                    tool_outputs=outputs,
                    event_handler=Answer(),
                ) as stream:
                    for text in stream.text_deltas:
                        printed.append(text)
                    self.final = stream.get_final_run()

    class Answer(AssistantEventHandler):
        pass

    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"Weather in Paris? {PARIS}"}])
    handler = Handler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=tool_assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert "".join(printed) == "Results: 18C"
    assert handler.final.status == "completed"
    call = seen_done_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id.startswith("call_")
    run = client.beta.threads.runs.retrieve(run_id=handler.final.id, thread_id=thread.id)
    assert run.status == "completed" and run.required_action is None and run.usage.total_tokens > 0


def test_parallel_calls_in_one_step_both_outputs_in_one_submit(client, tool_assistant, provider, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{marker} {PARIS}{OSLO}"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action" and run.required_action.type == "submit_tool_outputs"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Oslo"]
    assert len({c.id for c in calls}) == 2
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": c.id, "output": _answer(c)} for c in calls],
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.value == "Results: 18C; 4C"
    # the model saw its own calls and both results, under the ids the client answered
    sent = provider.requests_with(marker)[-1]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in sent[-2:]] == [c.id for c in calls]
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_step = steps[0]
    assert tool_step.status == "completed"
    assert [(c.function.name, c.function.output) for c in tool_step.step_details.tool_calls] == [
        ("get_weather", "18C"),
        ("get_weather", "4C"),
    ]


def test_two_rounds_of_tool_calls_in_one_run(client, tool_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[rounds:2]{PARIS}"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, poll_interval_ms=50
    )
    rounds = 0
    while run.status == "requires_action":
        rounds += 1
        calls = run.required_action.submit_tool_outputs.tool_calls
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": c.id, "output": f"r{rounds}"} for c in calls],
            poll_interval_ms=50,
        )
    assert rounds == 2 and run.status == "completed"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    # the second model call saw both rounds of calls and results, in order
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "Results: r1; r2"


def test_stream_shows_tool_call_deltas_and_final_steps(client, tool_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{PARIS}"}])
    created, deltas = [], []

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call):
            created.append(tool_call)

        def on_tool_call_delta(self, delta, snapshot):
            deltas.append(delta.function.arguments)

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=tool_assistant.id, event_handler=Handler()
    ) as stream:
        events = [e.event for e in stream]
        (step,) = stream.get_final_run_steps()
        run = stream.get_final_run()
    assert events[-1] == "thread.run.requires_action"
    assert "thread.run.step.delta" in events and "thread.message.created" not in events
    assert (
        created[0].function.name == "get_weather"
        and created[0].id == run.required_action.submit_tool_outputs.tool_calls[0].id
    )
    assert "".join(d for d in deltas if d) == '{"city": "Paris"}'[len(created[0].function.arguments) :]
    assert json.loads(step.step_details.tool_calls[0].function.arguments) == {"city": "Paris"}
    listed = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert listed.status == "in_progress" and listed.step_details.tool_calls[0].function.output is None
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)


def test_tool_choice_required_named_and_none(client, tool_assistant, provider, marker):
    def run_with(choice, text):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"no directive {text}"}])
        return client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice=choice, poll_interval_ms=50
        )

    required = run_with("required", f"{marker}-required")
    assert required.status == "requires_action" and required.tool_choice == "required"
    assert provider.requests_with(f"{marker}-required")[-1]["tool_choice"] == "required"
    named = run_with({"type": "function", "function": {"name": "get_time"}}, f"{marker}-named")
    assert named.status == "requires_action"
    assert named.required_action.submit_tool_outputs.tool_calls[0].function.name == "get_time"
    assert provider.requests_with(f"{marker}-named")[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    none = run_with("none", f"{marker}-none {PARIS}")
    assert none.status == "completed"
    assert provider.requests_with(f"{marker}-none")[-1]["tool_choice"] == "none"
    for run in (required, named):
        client.beta.threads.runs.cancel(run_id=run.id, thread_id=run.thread_id)


def test_run_level_tools_override_and_parallel_tool_calls_false(client, provider, marker):
    assistant = client.beta.assistants.create(model=MODEL)  # no tools of its own
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{marker} {PARIS}{OSLO}"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=[WEATHER], parallel_tool_calls=False, poll_interval_ms=50
    )
    assert run.status == "requires_action" and run.parallel_tool_calls is False
    assert [t.function.name for t in run.tools] == ["get_weather"]
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1
    sent = provider.requests_with(marker)[-1]
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"] and sent["parallel_tool_calls"] is False
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)


def test_bad_tool_outputs_are_refused_and_the_run_keeps_waiting(client, tool_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{PARIS}{OSLO}"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, poll_interval_ms=50
    )
    a, b = [c.id for c in run.required_action.submit_tool_outputs.tool_calls]
    bad = [
        (
            [{"tool_call_id": "call_unknown", "output": "x"}, {"tool_call_id": b, "output": "y"}],
            "tool_outputs[0].tool_call_id",
        ),
        ([{"tool_call_id": a, "output": "x"}], "tool_outputs"),
        ([{"tool_call_id": a, "output": "x"}, {"tool_call_id": a, "output": "y"}], "tool_outputs[1].tool_call_id"),
        ([], "tool_outputs"),
    ]
    for outputs, param in bad:
        with pytest.raises(openai.BadRequestError) as info:
            client.beta.threads.runs.submit_tool_outputs(run_id=run.id, thread_id=thread.id, tool_outputs=outputs)
        assert info.value.param == param, outputs
        with pytest.raises(openai.BadRequestError):
            with client.beta.threads.runs.submit_tool_outputs_stream(
                run_id=run.id, thread_id=thread.id, tool_outputs=outputs
            ) as stream:
                stream.until_done()
    after = client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
    assert after.status == "requires_action" and after.required_action == run.required_action
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert step.status == "in_progress" and all(c.function.output is None for c in step.step_details.tool_calls)
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": a, "output": "1"}, {"tool_call_id": b, "output": "2"}],
        poll_interval_ms=50,
    )
    assert done.status == "completed"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": a, "output": "again"}]
        )
    assert 'status "completed"' in info.value.message


def test_cancel_while_waiting_for_tool_outputs(client, tool_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": PARIS}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    cancelled = client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert step.status == "cancelled" and step.cancelled_at is not None
    assert step.usage.total_tokens > 0  # the model turn's usage stays on its step
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": step.step_details.tool_calls[0].id, "output": "x"}],
        )
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="none", poll_interval_ms=50
    )
    assert again.status == "completed"


def test_a_run_left_waiting_expires(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_RUN_EXPIRY_SECONDS": "5"}).start()
    try:
        client = server.client()
        assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": PARIS}])
        body = {"assistant_id": assistant.id, "stream": True}
        with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
            lines = list(response.iter_lines())
        last_seen = int([line for line in lines if line.startswith("id: ")][-1].removeprefix("id: "))
        run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
        assert run.status == "requires_action" and run.expires_at is not None
        # a watcher that saw the first segment end waits for what comes next: the expiry
        url = f"{server.base_url}/threads/{thread.id}/runs/{run.id}/events"
        with httpx.stream("GET", url, headers={"Last-Event-ID": str(last_seen)}, timeout=30) as response:
            frames = sse_frames(response.iter_lines())
            first = next(frames)
            # the watch is live before the run expires: silence (a keep-alive) while it still waits
            assert first == {"comment": "keep-alive"}
            assert client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).status == "requires_action"
            names = [frame["event"] for frame in frames if "event" in frame]
        assert names == ["thread.run.step.expired", "thread.run.expired", "done"]
        expired = client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
        assert expired.status == "expired"
        step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
        assert step.status == "expired" and step.expired_at is not None
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(
                run_id=run.id,
                thread_id=thread.id,
                tool_outputs=[{"tool_call_id": step.step_details.tool_calls[0].id, "output": "x"}],
            )
    finally:
        server.stop()


def test_prompt_based_tool_calls_for_a_model_without_native_tools(client, provider, marker):
    from tests.conftest import PLAIN_MODEL

    assistant = client.beta.assistants.create(model=PLAIN_MODEL, instructions="Be brief.", tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"{marker} {PARIS}{OSLO}"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [e.event for e in stream]
        run = stream.get_final_run()
    assert run.status == "requires_action" and "thread.message.created" not in events  # the JSON never showed as text
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    sent = provider.requests_with(marker)[-1]
    assert "tools" not in sent and "get_weather" in sent["messages"][0]["content"]
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": c.id, "output": _answer(c)} for c in calls]
    ) as stream:
        assert "".join(stream.text_deltas) == "Results: 18C; 4C"
    # plain answers of the same model still stream as text
    plain = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "hello"}],
        poll_interval_ms=50,
    )
    assert plain.status == "completed"
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "plain answer"


def test_response_format_reaches_the_provider(client, provider, marker):
    schema = {"type": "object", "properties": {"answer": {"type": "integer", "minimum": 0}}, "required": ["answer"]}
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": '[reply:{"answer": 42}] ' + marker}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        poll_interval_ms=50,
    )
    assert run.status == "completed" and run.response_format.json_schema.name == "answer"
    sent = provider.requests_with(marker)[-1]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def test_max_prompt_tokens_ends_the_run_incomplete(client, assistant, provider, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 400 + marker}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=50
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"
    assert provider.requests_with(marker) == []  # the oversized prompt was never sent
    assert client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data == []


def test_a_call_cut_off_by_max_completion_tokens_ends_incomplete(client, tool_assistant):
    long_args = '{"city": "' + "".join(str(i) for i in range(700)) + '"}'  # no repeating chunks
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[call:get_weather:{long_args}]"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, max_completion_tokens=256, poll_interval_ms=50
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.required_action is None
    assert (
        client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=tool_assistant.id, tool_choice="none", poll_interval_ms=50
        ).status
        == "completed"
    )  # the thread is free again


def test_text_before_calls_ends_its_step_first_and_stays_one_turn(client, tool_assistant, provider, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[say:Let me check.] {marker} {PARIS}"}])
    events = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=tool_assistant.id, stream=True))
    names = [e.event for e in events]
    created = [i for i, n in enumerate(names) if n == "thread.run.step.created"]
    message_step_done = names.index("thread.run.step.completed")
    assert names.index("thread.message.completed") < message_step_done < created[1]  # message step ends first
    run = events[-1].data
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "18C"}],
        poll_interval_ms=50,
    )
    sent = provider.requests_with(marker)[-1]["messages"]
    assistant_turn = [m for m in sent if m["role"] == "assistant"]
    assert (
        len(assistant_turn) == 1 and assistant_turn[0]["content"] == "Let me check." and assistant_turn[0]["tool_calls"]
    )
