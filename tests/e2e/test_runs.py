"""Runs through the real openai SDK: polling, streaming helpers, event order, thread-and-run."""

import httpx
from openai import AssistantEventHandler

from tests.conftest import MODEL, sse_frames

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores
ADAPTERS = True  # and through both provider adapters (lean and litellm)

EXPECTED_ORDER = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


def test_create_and_poll_completes_and_the_answer_is_listed(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:Paris is the capital.]"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    assert run.completed_at is not None and run.started_at is not None and run.expires_at is None
    assert (
        run.usage.completion_tokens > 0
        and run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    )
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert answer.content[0].text.value == "Paris is the capital."
    assert answer.run_id == run.id and answer.assistant_id == assistant.id and answer.status == "completed"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert len(steps) == 1 and steps[0].type == "message_creation" and steps[0].status == "completed"
    assert steps[0].step_details.message_creation.message_id == answer.id
    assert steps[0].usage.completion_tokens == run.usage.completion_tokens
    assert client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data == [answer]


def test_instructions_and_model_reach_the_provider(client, assistant, provider, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": marker}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_instructions="Answer briefly.",
        temperature=0.3,
        top_p=0.9,
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    assert run.instructions == "You are a test assistant.\n\nAnswer briefly."
    assert run.temperature == 0.3 and run.top_p == 0.9
    sent = provider.requests_with(marker)[-1]
    assert sent["model"] == "scripted"
    assert sent["messages"][0] == {"role": "system", "content": "You are a test assistant.\n\nAnswer briefly."}
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9


def test_model_alias_from_the_model_list_reaches_its_deployment(client, provider, marker):
    models = [m.id for m in client.models.list().data]
    assert models == ["scripted-alias", "scripted-litellm"]
    assistant = client.beta.assistants.create(model="scripted-alias", instructions="alias test")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[reply:via alias] {marker}"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed" and run.model == "scripted-alias"
    assert provider.requests_with(marker)[-1]["model"] == "scripted"


def test_run_overrides_model_and_instructions(client, provider, marker):
    assistant = client.beta.assistants.create(model="openai/not-reachable", instructions="base")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": marker}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, model=MODEL, instructions="override", poll_interval_ms=50
    )
    assert run.status == "completed" and run.model == MODEL and run.instructions == "override"
    assert provider.requests_with(marker)[-1]["messages"][0]["content"] == "override"


def test_additional_messages_join_the_thread_before_the_run(client, assistant, provider, marker):
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "text", "text": f"[reply:got both] {marker}"}]},
        ],
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    roles = [m.role for m in client.beta.threads.messages.list(thread_id=thread.id, order="asc").data]
    assert roles == ["user", "assistant", "user", "assistant"]
    sent = provider.requests_with(marker)[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]


def test_stream_text_deltas_yield_the_whole_answer_in_order(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:30]"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        deltas = list(stream.text_deltas)
        run = stream.get_final_run()
    assert "".join(deltas) == "".join(f"w{i} " for i in range(30))
    assert len(deltas) == 30
    assert run.status == "completed"


class RecordingHandler(AssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []
        self.text = ""
        self.done_text = None
        self.done_message = None

    def on_text_created(self, text):
        self.calls.append("text_created")

    def on_text_delta(self, delta, snapshot):
        self.calls.append("text_delta")
        self.text += delta.value

    def on_text_done(self, text):
        self.calls.append("text_done")
        self.done_text = text.value

    def on_message_done(self, message):
        self.calls.append("message_done")
        self.done_message = message

    def on_end(self):
        self.calls.append("end")


def test_event_handler_gets_every_callback_and_finals(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:Hello from the handler.]"}])
    handler = RecordingHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.calls[0] == "text_created"
    assert handler.calls[-3:] == ["text_done", "message_done", "end"]
    assert set(handler.calls[1:-3]) == {"text_delta"}
    assert handler.text == handler.done_text == "Hello from the handler."
    (final,) = handler.get_final_messages()
    assert final.content[0].text.value == "Hello from the handler." and final.status == "completed"
    assert handler.done_message.id == final.id
    run = handler.get_final_run()
    assert run.status == "completed" and run.thread_id == thread.id
    assert [s.type for s in handler.get_final_run_steps()] == ["message_creation"]


def test_create_and_stream_still_works(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:older helper]"}])
    with client.beta.threads.runs.create_and_stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        text = "".join(stream.text_deltas)
    assert text == "older helper"


def test_raw_stream_has_openai_event_order(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:abcdefgh]"}])
    events = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    names = [e.event for e in events]
    collapsed = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert collapsed == EXPECTED_ORDER
    assert names.count("thread.message.delta") == 3
    assert events[0].data.status == "queued" and events[-1].data.status == "completed"


def test_create_thread_and_run_streaming_starts_with_thread_created(client, assistant):
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "[reply:new thread answer]"}], "metadata": {"k": "v"}},
    ) as stream:
        events = [event.event for event in stream]
        run = stream.get_final_run()
    assert events[0] == "thread.created" and events[1:3] == ["thread.run.created", "thread.run.queued"]
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.metadata == {"k": "v"}
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "new thread answer"


def test_create_thread_and_run_polling(client, assistant):
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "[reply:polled]"}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id=run.thread_id).data
    assert messages[0].content[0].text.value == "polled"


def test_provider_error_fails_the_run_with_last_error(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[error:500]"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "failed"
    assert run.last_error.code == "server_error" and "scripted failure 500" in run.last_error.message
    assert run.failed_at is not None
    # the thread is free again
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "[reply:ok]"}],
        poll_interval_ms=50,
    )
    assert again.status == "completed"


def test_provider_rate_limit_maps_to_rate_limit_exceeded(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[error:429]"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"


def test_provider_error_while_streaming_ends_with_run_failed_then_done(server, client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[error:503]"}])
    events = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    assert [e.event for e in events][-1] == "thread.run.failed"  # the SDK keeps `done` to itself
    assert events[-1].data.last_error.code == "server_error"
    body = {
        "assistant_id": assistant.id,
        "stream": True,
        "additional_messages": [{"role": "user", "content": "[error:502]"}],
    }
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        names = [f["event"] for f in sse_frames(response.iter_lines()) if "comment" not in f]
    assert names[-2:] == ["thread.run.failed", "done"]  # on the wire
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, additional_messages=[{"role": "user", "content": "[error:500]"}]
    ) as stream:
        stream.until_done()
        assert stream.get_final_run().status == "failed"


def test_max_completion_tokens_ends_incomplete(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:400]"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=50
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"


def test_truncation_last_messages_limits_the_history(client, assistant, provider, marker):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"old {i}"} for i in range(4)] + [{"role": "user", "content": marker}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        poll_interval_ms=50,
    )
    assert run.status == "completed" and run.truncation_strategy.last_messages == 2
    sent = provider.requests_with(marker)[-1]["messages"]
    assert [m["content"] for m in sent] == ["You are a test assistant.", "old 3", marker]


def test_runs_list_retrieve_and_modify(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"a": "1"}, poll_interval_ms=50
    )
    assert run.metadata == {"a": "1"}
    updated = client.beta.threads.runs.update(run_id=run.id, thread_id=thread.id, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"}
    assert client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).metadata == {"b": "2"}
    assert [r.id for r in client.beta.threads.runs.list(thread_id=thread.id).data] == [run.id]
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert client.beta.threads.runs.steps.retrieve(step_id=step.id, thread_id=thread.id, run_id=run.id) == step
