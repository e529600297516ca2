"""Files through the openai SDK (multipart upload, content download) and gRPC (chunked upload)."""

import hashlib
import os

import grpc
import openai
import pytest
from assistd.v1 import file_pb2, file_pb2_grpc

from tests.conftest import Server, cql

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def test_upload_list_retrieve_download_delete(client):
    created = client.files.create(file=("notes.md", b"# Notes\nThe launch code is 1234.\n"), purpose="assistants")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.filename, created.bytes, created.purpose, created.status) == (
        "notes.md",
        33,
        "assistants",
        "processed",
    )
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == b"# Notes\nThe launch code is 1234.\n"
    listed = [f.id for f in client.files.list(purpose="assistants")]
    assert created.id in listed
    assert created.id not in [f.id for f in client.files.list(purpose="batch")]
    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id and deleted.object == "file"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)


def test_a_file_over_4_mb_comes_back_byte_identical(client):
    payload = os.urandom(5 * 1024 * 1024 + 17)
    created = client.files.create(file=("blob.bin", payload), purpose="assistants")
    assert created.bytes == len(payload)
    assert hashlib.sha256(client.files.content(created.id).read()).digest() == hashlib.sha256(payload).digest()


def test_file_pages_follow_after(client):
    start, *ids = [client.files.create(file=(f"p{i}.txt", b"x"), purpose="user_data").id for i in range(6)]
    # paged from this test's first file, so files other tests made on the shared server do not count
    page = client.files.list(purpose="user_data", limit=2, order="asc", after=start)
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    assert [f.id for f in client.files.list(purpose="user_data", limit=2, order="asc", after=start)] == ids


def test_bad_uploads_are_refused_and_leave_nothing(client, server):
    before = {f.id for f in client.files.list()}
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert info.value.param == "file"
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.txt", b"abc"), purpose="homework")
    assert info.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/files", body={"purpose": "assistants"}, cast_to=object)  # JSON, not multipart
    assert {f.id for f in client.files.list()} == before


def _kept_bytes(server: Server) -> set[str]:
    """The blob ids the server keeps bytes for, where its store keeps them: files under `files/`
    beside the SQLite file, or rows of `blob_chunks` in the Cassandra keyspace. (Bytes without a
    file record have no id the API would show, so this looks at the store itself.)"""
    url = server.env["ASSISTD_STORE"]
    if url.startswith("sqlite:"):
        return {path.name for path in (server.db.parent / "files").rglob("*") if path.is_file()}
    return {row.blob_id for row in cql(url, "SELECT DISTINCT tenant, blob_id FROM {keyspace}.blob_chunks")}


def test_an_upload_over_the_limit_gets_413_and_is_not_kept(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_MAX_FILE_BYTES": str(3 * 1024 * 1024)}).start()
    try:
        client = server.client()
        with pytest.raises(openai.APIStatusError) as info:
            client.files.create(file=("big.bin", os.urandom(4 * 1024 * 1024)), purpose="assistants")
        assert info.value.status_code == 413 and info.value.code == "file_too_large"
        assert client.files.list().data == []
        assert _kept_bytes(server) == set()  # the bytes taken in before the limit was hit did not stay
        ok = client.files.create(file=("small.bin", b"fits"), purpose="assistants")
        assert client.files.content(ok.id).read() == b"fits"
        assert _kept_bytes(server) == {ok.id}  # where the bytes are looked for is where they are kept
    finally:
        server.stop()


def test_grpc_streams_an_upload_in_chunks_and_the_content_back(server):
    payload = os.urandom(6 * 1024 * 1024)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = file_pb2_grpc.FileServiceStub(channel)

        def parts():
            yield file_pb2.UploadFileRequest(filename="big.bin", purpose=file_pb2.FILE_PURPOSE_ASSISTANTS)
            for i in range(0, len(payload), 256 * 1024):
                yield file_pb2.UploadFileRequest(chunk=payload[i : i + 256 * 1024])

        stored = stub.UploadFile(parts()).file
        assert stored.bytes == len(payload) and stored.filename == "big.bin"
        back = b"".join(r.chunk for r in stub.GetFileContent(file_pb2.GetFileContentRequest(file_id=stored.id)))
        assert back == payload
        with pytest.raises(grpc.RpcError) as info:
            stub.UploadFile(iter([file_pb2.UploadFileRequest(filename="x.txt", chunk=b"abc")]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "purpose" in info.value.details()
