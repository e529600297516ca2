"""Nothing half-done: a refused request leaves no object, no file, no blob and no queued work."""

import io

import httpx
import openai
import pytest

from tests.conftest import Server

STORES = ["sqlite", "cassandra"]


def test_a_run_refused_on_a_busy_thread_creates_no_vector_store_and_queues_nothing(client, assistant):
    file = client.files.create(file=("notes.txt", io.BytesIO(b"the secret word is lantern")), purpose="assistants")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:400][slow:0.05]"}])
    first = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    stores_before = {s.id for s in client.vector_stores.list(limit=100)}
    attached = {
        "role": "user",
        "content": "search it",
        "attachments": [{"file_id": file.id, "tools": [{"type": "file_search"}]}],
    }
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, additional_messages=[attached])
    assert "already has an active run" in info.value.message
    client.beta.threads.runs.cancel(run_id=first.id, thread_id=thread.id)
    client.beta.threads.runs.poll(run_id=first.id, thread_id=thread.id, poll_interval_ms=50)
    # no store for the thread's attachments, the thread unchanged, the refused message not stored
    assert {s.id for s in client.vector_stores.list(limit=100)} == stores_before
    after = client.beta.threads.retrieve(thread.id)
    assert after.tool_resources is None or not (
        after.tool_resources.file_search and after.tool_resources.file_search.vector_store_ids
    )
    messages = client.beta.threads.messages.list(thread_id=thread.id).data
    assert all(m.content[0].text.value != "search it" and not m.attachments for m in messages)


def _multipart(parts: list[tuple[str, bytes, str]]) -> bytes:
    body = b""
    for name, value, extra in parts:
        body += f'--xx\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode() + value + b"\r\n"
    return body + b"--xx--\r\n"


PURPOSE = ("purpose", b"assistants", "")
REJECTED = [
    _multipart([PURPOSE, ("file", b"x" * 5000, '; filename="big.txt"')]),  # over the 4,000-byte limit
    _multipart([("file", b"x" * 5000, '; filename="big.txt"'), PURPOSE]),  # too large, purpose last
    _multipart([PURPOSE, ("file", b"hello", "; filename*=UTF-8''a%00b.txt")]),  # NUL in the name
    _multipart([("file", b"hello", '; filename="ok.txt"'), ("purpose", b"nonsense", "")]),  # bad purpose after bytes
    _multipart([("file", b"hello", '; filename="ok.txt"'), ("colour", b"red", "")]),  # unknown field after bytes
    _multipart([("file", b"hello", '; filename="ok.txt"')]),  # no purpose
    _multipart([PURPOSE, ("file", b"", '; filename="empty.txt"')]),  # empty
    _multipart([PURPOSE, ("file", b"hello", '; filename="ok.txt"')])[:-30],  # truncated body
]


def test_rejected_uploads_leave_no_file_and_no_partial_blob(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_MAX_FILE_BYTES": "4000"}).start()
    try:
        statuses = []
        for _ in range(4):  # 32 rejected uploads in all
            for body in REJECTED:
                response = httpx.post(
                    server.base_url + "/files",
                    content=body,
                    headers={"Authorization": "Bearer k", "Content-Type": "multipart/form-data; boundary=xx"},
                    timeout=30,
                )
                statuses.append(response.status_code)
                assert response.json()["error"]["type"] == "invalid_request_error", response.text
        assert set(statuses) <= {400, 413} and statuses.count(413) == 8
        assert server.client().files.list().data == []
        blobs = tmp_path / "files"
        if not store_env:  # SQLite: the bytes live beside the database
            assert [p for p in blobs.rglob("*") if p.is_file()] == []
    finally:
        server.stop()
