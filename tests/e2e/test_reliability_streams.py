"""Streams end cleanly: a client that does not read is not kept on forever."""

import json
import socket

from tests.conftest import wait_for

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
