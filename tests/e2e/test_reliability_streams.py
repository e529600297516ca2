"""Streams end cleanly: a client that does not read is not kept on forever; a run cut off by kill -9
keeps the text it had streamed."""

import json
import socket

import httpx

from tests.conftest import MODEL, Server, unique, wait_for

STORES = ["sqlite", "cassandra"]


def test_a_client_that_never_reads_is_closed_once_its_run_ends(server, client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:30]"}])
    body = json.dumps({"assistant_id": assistant.id, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", server.http_port))
    sock.sendall(
        f"POST /v1/threads/{thread.id}/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        # the client reads nothing while its run goes to the end
        run = wait_for(lambda: next(iter(client.beta.threads.runs.list(thread_id=thread.id).data), None))
        assert client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50).status == "completed"
        # then the server has ended the connection: what it sent is followed by EOF, not a kept-alive socket
        sock.settimeout(60)  # bounds a hung test only
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"event: thread.run.completed" in received
        assert b"event: done\n" in received and received.endswith(b"0\r\n\r\n")  # the chunked body ended
    finally:
        sock.close()


def test_a_responses_stream_closes_its_connection_once_the_response_ends(server, client):
    """The same for a Responses stream (one SSE pump serves both APIs): the connection is not kept
    alive after the stream, so a client that reads nothing until then sees the end and EOF."""
    body = json.dumps({"model": MODEL, "input": "[chunks:30]", "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", server.http_port))
    sock.sendall(
        b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        sock.settimeout(60)  # bounds a hung test only
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"event: response.completed" in received
        assert b"[DONE]" not in received and received.endswith(b"0\r\n\r\n")  # the chunked body ended
    finally:
        sock.close()


LEASE = 3  # seconds: on a shared store (Cassandra) a killed process's runs are ended once its lease runs out


def test_after_kill_9_the_message_keeps_the_text_streamed_so_far(provider, tmp_path, store_env):
    env = {**store_env, "ASSISTD_RUN_LEASE_SECONDS": str(LEASE)}
    server = Server(tmp_path, provider, env).start()
    client = server.client()
    assistant = client.beta.assistants.create(model=MODEL, name="cut")
    gate = unique("gate-never-opened")  # five chunks, then the provider waits: the kill comes first
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[chunks:100][gate:{gate}:5]"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deltas = 0
    with httpx.stream(
        "GET",
        f"{server.base_url}/threads/{thread.id}/runs/{run.id}/events",
        headers={"Authorization": "Bearer test-key"},
        timeout=60,
    ) as events:
        for line in events.iter_lines():  # events reach watchers only once committed to the store
            deltas += line == "event: thread.message.delta"
            if deltas == 5:
                break
        server.stop(kill=True)  # kill -9 mid-run
    server = Server(tmp_path, provider, env).start()
    try:
        client = server.client()
        wait_for(
            lambda: client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).status == "failed",
            timeout=LEASE * 5,
        )
        answer = client.beta.threads.messages.list(thread_id=thread.id, order="desc").data[0]
        assert answer.role == "assistant" and answer.status == "incomplete"
        assert answer.content[0].text.value == "w0 w1 w2 w3 w4 "
    finally:
        server.stop()


def test_sigterm_drains_then_ends_long_streams_with_their_terminal_events(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_DRAIN_SECONDS": "8"}).start()
    client = server.client()
    assistant = client.beta.assistants.create(model=MODEL, name="long")
    short = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:10][slow:0.05]"}])
    long = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:2000][slow:0.05]"}])
    managers = {
        name: client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id)
        for name, thread in (("short", short), ("long", long))
    }
    streams = {name: manager.__enter__() for name, manager in managers.items()}
    seen: dict[str, list[str]] = {name: [] for name in streams}
    for event in streams["long"]:
        seen["long"].append(event.event)
        if event.event == "thread.message.delta":
            break
    server.process.terminate()  # SIGTERM while both stream
    for name, stream in streams.items():
        seen[name] += [event.event for event in stream]  # each ends, with `done` (the SDK stops there)
        managers[name].__exit__(None, None, None)
    assert server.process.wait(60) == 0
    assert seen["short"][-1] == "thread.run.completed"  # finished within the drain
    assert seen["long"][-1] == "thread.run.failed"
    assert "thread.message.incomplete" in seen["long"]
    server = Server(tmp_path, provider, store_env).start()  # the runs' ends were recorded before exit
    try:
        client = server.client()
        run = client.beta.threads.runs.list(thread_id=long.id).data[0]
        assert run.status == "failed" and run.last_error.code == "server_error"
        assert "shutting down" in run.last_error.message
        answer = client.beta.threads.messages.list(thread_id=long.id).data[0]
        assert answer.status == "incomplete" and answer.content[0].text.value.startswith("w0 ")
    finally:
        server.stop()
