"""Per-tenant provider credentials: `assistd credentials set|list|delete`, kept encrypted under
ASSISTD_MASTER_KEY; a tenant's runs reach the provider with its own key (through either adapter),
other tenants with the server's; the key is in neither the store's file nor the server's log."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import grpc
import openai
import pytest
from assistd.v1 import message_pb2, run_pb2, run_service_pb2, run_service_pb2_grpc
from openai.types.beta.threads import Run

from tests.conftest import LITELLM_MODEL, MODEL, ROOT, Server, unique
from tests.scripted_llm import free_port

KEYS = "key-a=tenant-a,key-b=tenant-b"
TENANT_KEY = "sk-tenant-a-" + "s3cr3t" * 6 + "WXYZ"  # what tenant A pays its provider with
SERVER_KEY = "test-key"  # the server's own key (OPENAI_API_KEY and tests/models.yaml)


def _master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _credentials(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "credentials", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _ask(server: Server, key: str, model: str, text: str) -> Run:
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    assistant = client.beta.assistants.create(model=model)
    return client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": text}]}
    )


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory):
    """A server whose tenant A has its own openai key (set before start, with the CLI)."""
    server = Server(
        tmp_path_factory.mktemp("credentials"),
        provider,
        {"ASSISTD_API_KEYS": KEYS, "ASSISTD_MASTER_KEY": _master_key()},
    )
    done = _credentials(server.env, "set", "--tenant", "tenant-a", "--provider", "openai", "--api-key", TENANT_KEY)
    assert done.returncode == 0, done.stderr
    assert TENANT_KEY not in done.stdout + done.stderr and "WXYZ" in done.stdout
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("model", [MODEL, LITELLM_MODEL], ids=["lean", "litellm"])
def test_a_tenant_with_its_own_key_reaches_the_provider_with_it_and_others_with_the_servers(server, provider, model):
    marker_a, marker_b = unique("tenant-a"), unique("tenant-b")
    assert _ask(server, "key-a", model, f"[reply:ok] {marker_a}").status == "completed"
    assert _ask(server, "key-b", model, f"[reply:ok] {marker_b}").status == "completed"
    assert provider.keys_with(marker_a) == [TENANT_KEY]
    assert provider.keys_with(marker_b) == [SERVER_KEY]


def test_a_grpc_run_uses_the_tenants_key(server, provider):
    marker = unique("grpc")
    message = message_pb2.NewMessage(role=message_pb2.MESSAGE_ROLE_USER)
    message.content.add().text.value = f"[reply:ok] {marker}"
    assistant = openai.OpenAI(base_url=server.base_url, api_key="key-a").beta.assistants.create(model=MODEL)
    with grpc.insecure_channel(server.grpc_target) as channel:
        events = list(
            run_service_pb2_grpc.RunServiceStub(channel).CreateThreadAndRunStream(
                run_service_pb2.CreateThreadAndRunRequest(
                    assistant_id=assistant.id, thread=run_service_pb2.ThreadParams(messages=[message])
                ),
                metadata=[("authorization", "Bearer key-a")],
            )
        )
    assert events[-2].run.status == run_pb2.RUN_STATUS_COMPLETED
    assert provider.keys_with(marker) == [TENANT_KEY]


def test_list_shows_no_key_and_the_key_is_in_neither_the_store_nor_the_log(server):
    listed = _credentials(server.env, "list", "--tenant", "tenant-a")
    assert listed.returncode == 0, listed.stderr
    provider_name, api_base, fingerprint, created_at = listed.stdout.strip().split("\t")
    assert (provider_name, api_base, fingerprint) == ("openai", "-", "...WXYZ") and created_at.isdigit()
    assert TENANT_KEY not in listed.stdout
    assert _credentials(server.env, "list", "--tenant", "tenant-b").stdout == ""
    secret = TENANT_KEY.encode()
    store_files = list(Path(server.db).parent.glob(Path(server.db).name + "*"))  # the file, its WAL and SHM
    assert store_files and all(secret not in f.read_bytes() for f in store_files)
    assert secret not in server.log_path.read_bytes()


def test_setting_credentials_needs_a_valid_master_key(server):
    env = {k: v for k, v in server.env.items() if k != "ASSISTD_MASTER_KEY"}
    done = _credentials(env, "set", "--tenant", "tenant-b", "--provider", "openai", "--api-key", "sk-b")
    assert done.returncode == 2 and "ASSISTD_MASTER_KEY is not set" in done.stderr
    done = _credentials(
        {**env, "ASSISTD_MASTER_KEY": "c2hvcnQ="},
        "set",
        "--tenant",
        "tenant-b",
        "--provider",
        "openai",
        "--api-key",
        "sk-b",
    )
    assert done.returncode == 2 and "exactly 32 bytes" in done.stderr and "Traceback" not in done.stderr
    assert _credentials(server.env, "list", "--tenant", "tenant-b").stdout == ""


def test_deleted_credentials_are_gone(server):
    env = server.env
    assert (
        _credentials(
            env, "set", "--tenant", "tenant-c", "--provider", "anthropic", "--api-key", "sk-ant-1234"
        ).returncode
        == 0
    )
    assert "anthropic" in _credentials(env, "list", "--tenant", "tenant-c").stdout
    assert _credentials(env, "delete", "--tenant", "tenant-c", "--provider", "anthropic").returncode == 0
    assert _credentials(env, "list", "--tenant", "tenant-c").stdout == ""
    assert _credentials(env, "delete", "--tenant", "tenant-c", "--provider", "anthropic").returncode == 1


def test_a_wrong_master_key_fails_the_tenants_runs_clearly_and_nothing_else(provider, tmp_path):
    server = Server(tmp_path, provider, {"ASSISTD_API_KEYS": KEYS, "ASSISTD_MASTER_KEY": _master_key()})
    assert (
        _credentials(
            server.env, "set", "--tenant", "tenant-a", "--provider", "openai", "--api-key", TENANT_KEY
        ).returncode
        == 0
    )
    server.env["ASSISTD_MASTER_KEY"] = _master_key()  # not the one the key was stored with
    server.start()
    try:
        marker = unique("wrong-master")
        run = _ask(server, "key-a", MODEL, f"[reply:ok] {marker}")
        assert run.status == "failed" and run.last_error.code == "server_error"
        assert "ASSISTD_MASTER_KEY is not the key they were stored with" in run.last_error.message
        assert provider.keys_with(marker) == []  # never the server's key instead
        assert _ask(server, "key-b", MODEL, "[reply:still serving]").status == "completed"
    finally:
        server.stop()
    assert TENANT_KEY.encode() not in server.log_path.read_bytes()


@pytest.mark.parametrize("model", [MODEL, LITELLM_MODEL], ids=["lean", "litellm"])
def test_a_tenants_api_base_is_where_its_runs_go(provider, tmp_path, model):
    # The server's own provider is out of reach; tenant A's credentials name the one that answers.
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = Server(
        tmp_path,
        provider,
        {
            "ASSISTD_API_KEYS": KEYS,
            "ASSISTD_MASTER_KEY": _master_key(),
            "OPENAI_API_BASE": dead,
            "SCRIPTED_API_BASE": dead,
        },
    )
    args = [
        "set",
        "--tenant",
        "tenant-a",
        "--provider",
        "openai",
        "--api-key",
        TENANT_KEY,
        "--api-base",
        provider.base_url,
    ]
    assert _credentials(server.env, *args).returncode == 0
    assert provider.base_url in _credentials(server.env, "list", "--tenant", "tenant-a").stdout
    server.start()
    try:
        marker = unique("own-base")
        assert _ask(server, "key-a", model, f"[reply:ok] {marker}").status == "completed"
        assert provider.keys_with(marker) == [TENANT_KEY]
        other = _ask(server, "key-b", model, "[reply:unreachable]")
        assert other.status == "failed" and other.last_error.code == "server_error"
    finally:
        server.stop()
