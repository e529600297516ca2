"""Bad input and conflicts get OpenAI-shaped errors and change nothing; cancel works at any point."""

import httpx
import openai
import pytest

from tests.conftest import MODEL, Server, sse_frames, wait_for

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def test_a_second_run_on_a_busy_thread_is_refused(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:40][slow:0.05]"}])
    first = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert info.value.status_code == 400
    assert f"already has an active run {first.id}" in info.value.message
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="while busy")
    client.beta.threads.runs.cancel(run_id=first.id, thread_id=thread.id)
    final = client.beta.threads.runs.poll(run_id=first.id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "cancelled"
    assert len(client.beta.threads.runs.list(thread_id=thread.id).data) == 1


def test_cancelling_a_slow_streaming_run(client, assistant, provider, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[chunks:200][slow:0.05] {marker}"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = []
        for event in stream:
            events.append(event.event)
            if event.event == "thread.message.delta" and events.count("thread.message.delta") == 3:
                cancelling = client.beta.threads.runs.cancel(run_id=stream.current_run.id, thread_id=thread.id)
                assert cancelling.status == "cancelling"
        run = stream.get_final_run()
    assert run.status == "cancelled" and run.cancelled_at is not None
    assert events[-3:] == ["thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled"]
    assert events.count("thread.run.cancelling") == 1
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    assert message.content[0].text.value.startswith("w0 w1 w2")
    # cancellation stops this run's provider call instead of letting it run to the end
    wait_for(lambda: provider.was_cut_off(marker))


def test_cancel_a_run_still_queued_behind_its_files_ingestion(provider, tmp_path, store_env, marker):
    # A run waits in `queued` until the files it searches are ingested; this file's embedding takes 30 s.
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_EMBEDDING_MODEL": "openai/scripted-embed"}).start()
    try:
        client = server.client()
        vs = client.vector_stores.create(name="slow")
        slow = client.files.create(file=("slow.txt", b"Takes a while to embed. [embed-slow:30]"), purpose="assistants")
        client.vector_stores.files.create(vector_store_id=vs.id, file_id=slow.id)
        assistant = client.beta.assistants.create(
            model=MODEL, tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [vs.id]}}
        )
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"hello {marker}"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        assert client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).status == "queued"
        cancelled = client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
        assert cancelled.status == "cancelling"
        final = client.beta.threads.runs.poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=50)
        assert final.status == "cancelled" and final.started_at is None and final.cancelled_at is not None
        url = f"{server.base_url}/threads/{thread.id}/runs/{run.id}/events"
        with httpx.stream("GET", url, timeout=30) as response:
            names = [f["event"] for f in sse_frames(response.iter_lines()) if "event" in f]
        assert names == [
            "thread.run.created",
            "thread.run.queued",
            "thread.run.cancelling",
            "thread.run.cancelled",
            "done",
        ]
        assert provider.requests_with(marker) == []  # the model was never called
        assert client.vector_stores.files.retrieve(file_id=slow.id, vector_store_id=vs.id).status == "in_progress"
        with pytest.raises(openai.BadRequestError) as info:
            client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
        assert "Cannot cancel run with status 'cancelled'" in info.value.message
    finally:
        server.stop()


def test_unknown_ids_are_not_found(client, assistant):
    thread = client.beta.threads.create()
    cases = [
        lambda: client.beta.assistants.retrieve("asst_nope"),
        lambda: client.beta.assistants.delete("asst_nope"),
        lambda: client.beta.threads.retrieve("thread_nope"),
        lambda: client.beta.threads.delete("thread_nope"),
        lambda: client.beta.threads.messages.create(thread_id="thread_nope", role="user", content="x"),
        lambda: client.beta.threads.messages.retrieve(message_id="msg_nope", thread_id=thread.id),
        lambda: client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope"),
        lambda: client.beta.threads.runs.create(thread_id="thread_nope", assistant_id=assistant.id),
        lambda: client.beta.threads.runs.retrieve(run_id="run_nope", thread_id=thread.id),
        lambda: client.beta.threads.runs.cancel(run_id="run_nope", thread_id=thread.id),
        lambda: client.beta.threads.runs.steps.list(run_id="run_nope", thread_id=thread.id),
    ]
    for case in cases:
        with pytest.raises(openai.NotFoundError) as info:
            case()
        assert info.value.body["type"] == "invalid_request_error"
        assert "found with id" in info.value.message
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def _post(server, path, content, headers=None):
    return httpx.post(
        server.base_url + path, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )


def test_malformed_json_and_wrong_types_name_the_param_and_change_nothing(server, client):
    newest = [
        a.id for a in client.beta.assistants.list(limit=1).data
    ]  # ids are time-ordered: a new one would top the list
    response = _post(server, "/assistants", b'{"model": "x",')
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.json()["error"]["type"] == "invalid_request_error"
    wrong = [
        ({"model": 5}, "model"),
        ({"model": MODEL, "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "metadata": {"k": 1}}, "metadata.k"),
        ({"model": MODEL, "tools": [{"type": "browser"}]}, "tools[0].type"),
        (
            {"model": MODEL, "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        ({"model": MODEL, "temperature": 3}, "temperature"),
        ({"model": MODEL, "unknown_thing": 1}, "unknown_thing"),
        ({"name": "no model"}, "model"),
    ]
    for body, param in wrong:
        with pytest.raises(openai.BadRequestError) as info:
            client.post("/assistants", body=body, cast_to=object)
        assert info.value.param == param, body
    assert [a.id for a in client.beta.assistants.list(limit=1).data] == newest


def test_bad_run_and_message_requests(client, assistant):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread_id=thread.id, role="system", content="x")
    assert info.value.param == "role"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=[])
    assert info.value.param == "content"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.create(messages=[{"role": "user", "content": "ok"}, {"role": "user"}])
    assert info.value.param == "messages[1].content"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, top_p=2)
    assert info.value.param == "top_p"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream="yes")
    assert info.value.param == "stream"
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError) as info:
            client.beta.threads.messages.list(thread_id=thread.id, limit=limit)
        assert info.value.param == "limit"
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}],
        )
    assert info.value.param == "additional_messages[1].role"
    # none of the refused requests left anything behind
    assert client.beta.threads.messages.list(thread_id=thread.id).data == []
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def test_unknown_route_and_submit_tool_outputs_on_a_finished_run(server, client, assistant):
    response = httpx.get(server.base_url + "/nothing/here")
    assert response.status_code == 404 and response.json()["error"]["message"].startswith("Invalid URL")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_x", "output": "1"}]
        )
    assert 'status "completed" do not accept tool outputs' in info.value.message
    assert client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).status == "completed"
