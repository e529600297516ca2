"""API keys: kept as salted hashes in the store (`assistd keys create|list|revoke`), accepted over
HTTP and gRPC, refused once revoked; the key a caller presents is never written down, in dev mode
or otherwise."""

import hashlib
import subprocess
import sys
import uuid

import grpc
import openai
import pytest
from assistd.v1 import assistant_pb2, assistant_pb2_grpc

from tests.conftest import MODEL, ROOT, Server

STORES = ["sqlite", "cassandra"]


def _keys(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", *args, "--store", server.env["ASSISTD_STORE"]],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _create(server: Server, tenant: str) -> tuple[str, str]:
    """(key id, key) of a new key for tenant."""
    done = _keys(server, "create", "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    header, key = done.stdout.strip().splitlines()
    return header.split()[1], key


def _secret(key: str) -> str:
    return key.removeprefix("sk-assistd-").split("-", 1)[1]


def _client(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _grpc_list(server: Server, key: str) -> list[str]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = assistant_pb2_grpc.AssistantServiceStub(channel)
        reply = stub.ListAssistants(
            assistant_pb2.ListAssistantsRequest(limit=100), metadata=[("authorization", f"Bearer {key}")]
        )
        return [a.id for a in reply.data]


def _stored_bytes(server: Server) -> bytes:
    """Everything the SQLite store and the server's log hold on disk."""
    files = [p for p in server.db.parent.iterdir() if p.name.startswith(server.db.name)] + [server.log_path]
    return b"".join(p.read_bytes() for p in files)


@pytest.fixture
def keyed(provider, tmp_path, store_env):
    """A server started after its store got a key for tenant `acme` (so not in dev mode)."""
    server = Server(tmp_path, provider, store_env)
    key_id, key = _create(server, "acme")
    server.start()
    yield server, key_id, key
    server.stop()


def test_store_keys_work_over_http_and_grpc_and_revoked_ones_get_401(keyed):
    server, key_id, key = keyed
    acme = _client(server, key)
    assistant = acme.beta.assistants.create(model=MODEL, name="acme's")
    assert _grpc_list(server, key) == [assistant.id]
    # a key made while the server runs works at once, for its own tenant only
    beta_id, beta_key = _create(server, "beta")
    beta = _client(server, beta_key)
    assert beta.beta.assistants.list().data == []
    with pytest.raises(openai.NotFoundError):
        beta.beta.assistants.retrieve(assistant.id)
    # not in dev mode: an unknown key, or a store-shaped one with a wrong secret, is refused
    for wrong in ("sk-whatever", key[:-4] + "AAAA", "sk-assistd-0000000000000000-nope"):
        with pytest.raises(openai.AuthenticationError):
            _client(server, wrong).beta.assistants.list()
    listing = _keys(server, "list", "--tenant", "acme")
    assert listing.returncode == 0 and key_id in listing.stdout and beta_id not in listing.stdout
    assert _secret(key) not in listing.stdout  # the secret is never shown again
    revoked = _keys(server, "revoke", key_id, "--tenant", "acme")
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(openai.AuthenticationError) as info:
        acme.beta.assistants.list()
    assert info.value.code == "invalid_api_key"
    with pytest.raises(grpc.RpcError) as refused:
        _grpc_list(server, key)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in _keys(server, "list").stdout
    assert beta.beta.assistants.list().data == []  # other keys unaffected
    if server.env["ASSISTD_STORE"].startswith("sqlite"):
        stored = _stored_bytes(server)
        assert key.encode() not in stored and beta_key.encode() not in stored
        assert _secret(key).encode() not in stored


def test_keys_cli_refuses_bad_requests(keyed):
    server, _, _ = keyed
    assert _keys(server, "create").returncode != 0  # no tenant
    assert _keys(server, "create", "--tenant", "_assistd").returncode != 0  # the reserved namespace
    assert _keys(server, "revoke", "ffffffffffffffff").returncode != 0
    assert _keys(server, "revoke", keyed[1], "--tenant", "someone-else").returncode != 0


def test_dev_mode_never_stores_the_presented_key(provider, tmp_path):
    server = Server(tmp_path, provider).start()
    try:
        secret = f"sk-live-{uuid.uuid4().hex}"
        client = _client(server, secret)
        assistant = client.beta.assistants.create(model=MODEL, name="dev")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:ok]"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        assert run.status == "completed"
        # one fixed tenant: any other key sees the same objects
        assert _client(server, "sk-other").beta.assistants.retrieve(assistant.id).id == assistant.id
    finally:
        server.stop()
    assert secret.encode() not in _stored_bytes(server)


def test_env_keys_may_be_given_as_hashes_and_a_bare_key_is_not_its_own_tenant(provider, tmp_path):
    hashed = f"sk-env-{uuid.uuid4().hex}"
    bare = f"sk-bare-{uuid.uuid4().hex}"
    digest = hashlib.sha256(hashed.encode()).hexdigest()
    server = Server(tmp_path, provider, {"ASSISTD_API_KEYS": f"sha256:{digest}=team,{bare}"}).start()
    try:
        made = _client(server, hashed).beta.assistants.create(model=MODEL, name="team's")
        assert [a.id for a in _client(server, hashed).beta.assistants.list()] == [made.id]
        assert _client(server, bare).beta.assistants.list().data == []
        _client(server, bare).beta.assistants.create(model=MODEL, name="bare's")
        with pytest.raises(openai.AuthenticationError):
            _client(server, "sk-nope").beta.assistants.list()
        assert _grpc_list(server, hashed) == [made.id]
    finally:
        server.stop()
    stored = _stored_bytes(server)
    assert bare.encode() not in stored and hashed.encode() not in stored
