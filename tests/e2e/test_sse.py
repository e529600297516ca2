"""The SSE wire format, heartbeats, resume with Last-Event-ID, and client disconnects."""

import json

import httpx

from tests.conftest import sse_frames, unique, wait_for

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def _start_run(server, client, assistant, text):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return thread, {"assistant_id": assistant.id, "stream": True}


def _events(response):
    """The response's SSE frames as they arrive, without heartbeat comments."""
    return (frame for frame in sse_frames(response.iter_lines()) if "comment" not in frame)


def _text(frames) -> str:
    return "".join(
        json.loads(f["data"])["delta"]["content"][0]["text"]["value"]
        for f in frames
        if f["event"] == "thread.message.delta"
    )


class _Recorded(httpx.SyncByteStream):
    def __init__(self, stream, received: list[bytes]):
        self._stream, self._received = stream, received

    def __iter__(self):
        for chunk in self._stream:
            self._received.append(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class RecordingTransport(httpx.HTTPTransport):
    """httpx's own transport, keeping a copy of every response byte it hands to the client."""

    def __init__(self):
        super().__init__()
        self.received: list[bytes] = []

    def handle_request(self, request):
        response = super().handle_request(request)
        response.stream = _Recorded(response.stream, self.received)
        return response


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


def test_heartbeats_do_not_confuse_the_sdk(server, assistant):
    wire = RecordingTransport()
    client = server.client(http_client=httpx.Client(transport=wire, timeout=30))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:abcdef][slow:1.2]"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        assert "".join(stream.text_deltas) == "abcdef"
        assert stream.get_final_run().status == "completed"
    assert b": keep-alive\n" in b"".join(wire.received)  # the SDK did read heartbeats on this stream


def test_resume_with_last_event_id_mid_run(server, client, assistant, provider):
    gate = unique("gate-resume")
    thread, body = _start_run(server, client, assistant, f"[chunks:20][gate:{gate}:10]")
    first = []
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        for frame in _events(response):
            first.append(frame)
            if _text(first) == "w0 w1 w2 ":
                break  # hang up after a few frames
    run_id = json.loads(first[0]["data"])["id"]
    wait_for(lambda: provider.is_held(gate))  # the model stopped halfway: frames were made while nobody listened
    url = f"{server.base_url}/threads/{thread.id}/runs/{run_id}/events"
    with httpx.stream("GET", url, headers={"Last-Event-ID": first[-1]["id"]}, timeout=30) as response:
        frames = _events(response)
        resumed = [next(frames)]
        # the first resumed frame arrived while the run was still going: its model call waits at the gate
        assert client.beta.threads.runs.retrieve(run_id=run_id, thread_id=thread.id).status == "in_progress"
        assert provider.is_held(gate)
        provider.release(gate)
        resumed += list(frames)
    assert int(resumed[0]["id"]) == int(first[-1]["id"]) + 1
    ids = [int(f["id"]) for f in first + resumed]
    assert ids == list(range(1, len(ids) + 1))  # the rest, with no gap and no repeat
    assert resumed[-2]["event"] == "thread.run.completed" and resumed[-1] == {
        "event": "done",
        "id": str(ids[-1]),
        "data": "[DONE]",
    }
    assert _text(first + resumed) == "".join(f"w{i} " for i in range(20))  # including what came after the resume
    with httpx.stream("GET", url, headers={"Last-Event-ID": "0"}, timeout=30) as response:
        assert first + resumed == list(_events(response))  # exactly the run's log


def test_a_client_that_disconnects_mid_stream_leaves_the_run_to_finish(server, client, assistant, provider):
    gate = unique("gate-hang-up")
    thread, body = _start_run(server, client, assistant, f"[chunks:40][gate:{gate}:5]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        for frame in _events(response):
            if frame.get("event") == "thread.message.delta":
                break  # hang up mid-answer: the run cannot end before the gate opens
    wait_for(lambda: provider.is_held(gate))
    provider.release(gate)
    run = wait_for(
        lambda: (r := client.beta.threads.runs.list(thread_id=thread.id).data[0]).status == "completed" and r
    )
    assert run.status == "completed"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.role == "assistant" and message.status == "completed"
    assert message.content[0].text.value == "".join(f"w{i} " for i in range(40))
    assert not provider.was_cut_off(gate)  # the model call went on after the client left


def test_watching_a_finished_run_past_its_end_returns_at_once(server, client, assistant):
    thread, body = _start_run(server, client, assistant, "[reply:over]")
    with httpx.stream("POST", f"{server.base_url}/threads/{thread.id}/runs", json=body, timeout=30) as response:
        frames = [f for f in sse_frames(response.iter_lines()) if "comment" not in f]
    run_id = client.beta.threads.runs.list(thread_id=thread.id).data[0].id
    url = f"{server.base_url}/threads/{thread.id}/runs/{run_id}/events"
    response = httpx.get(url, headers={"Last-Event-ID": frames[-1]["id"]}, timeout=5)
    assert response.status_code == 200 and response.text == ""
    assert httpx.get(url.replace(run_id, "run_nope"), timeout=5).status_code == 404
