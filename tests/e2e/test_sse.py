"""The SSE wire format, heartbeats, resume with Last-Event-ID, and client disconnects."""

import httpx

from tests.conftest import sse_frames, wait_for


def _start_run(server, client, assistant, text):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return thread, {"assistant_id": assistant.id, "stream": True}


def test_sse_frames_have_event_id_and_data_and_end_with_done(server, client, assistant):
    thread, body = _start_run(server, client, assistant, "[reply:wire format]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in sse_frames(response.iter_lines()) if "comment" not in f]
    assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1] == {"event": "done", "id": str(len(frames)), "data": "[DONE]"}
    assert frames[0]["event"] == "thread.run.created"


def test_heartbeats_while_the_model_is_silent(server, client, assistant):
    # the test server's heartbeat interval is 0.5 s; the model waits 1.2 s per chunk
    thread, body = _start_run(server, client, assistant, "[reply:ab][slow:1.2]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        frames = list(sse_frames(response.iter_lines()))
    assert {"comment": "keep-alive"} in frames
    assert frames[-1]["event"] == "done"


def test_heartbeats_do_not_confuse_the_sdk(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:abcdef][slow:0.7]"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        assert "".join(stream.text_deltas) == "abcdef"
        assert stream.get_final_run().status == "completed"


def test_resume_with_last_event_id(server, client, assistant):
    thread, body = _start_run(server, client, assistant, "[reply:resumable answer]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        full = [f for f in sse_frames(response.iter_lines()) if "comment" not in f]
    run_id = next(f for f in full if f["event"] == "thread.run.created")["data"].split('"id":"')[1].split('"')[0]
    url = f"{server.base_url}/threads/{thread.id}/runs/{run_id}/events"
    with httpx.stream("GET", url, headers={"Last-Event-ID": "4"}, timeout=30) as response:
        resumed = [f for f in sse_frames(response.iter_lines()) if "comment" not in f]
    assert resumed == full[4:]


def test_a_client_that_disconnects_mid_stream_leaves_the_run_to_finish(server, client, assistant):
    thread, body = _start_run(server, client, assistant, "[chunks:40][slow:0.03]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        for frame in sse_frames(response.iter_lines()):
            if frame.get("event") == "thread.message.delta":
                break  # hang up mid-answer
    run = wait_for(lambda: (r := client.beta.threads.runs.list(thread_id=thread.id).data[0]).status == "completed" and r)
    assert run.status == "completed"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.role == "assistant" and message.status == "completed"
    assert message.content[0].text.value == "".join(f"w{i} " for i in range(40))


def test_watching_a_finished_run_past_its_end_returns_at_once(server, client, assistant):
    thread, body = _start_run(server, client, assistant, "[reply:over]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        frames = [f for f in sse_frames(response.iter_lines()) if "comment" not in f]
    run_id = client.beta.threads.runs.list(thread_id=thread.id).data[0].id
    url = f"{server.base_url}/threads/{thread.id}/runs/{run_id}/events"
    response = httpx.get(url, headers={"Last-Event-ID": frames[-1]["id"]}, timeout=5)
    assert response.status_code == 200 and response.text == ""
    assert httpx.get(url.replace(run_id, "run_nope"), timeout=5).status_code == 404
