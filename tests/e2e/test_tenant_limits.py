"""Per-tenant limits: requests per second (429 + retry-after over it), runs working at once (a run
over the limit is a 429 that leaves nothing behind), and the size of JSON bodies (413). Over gRPC
a tenant over a limit gets RESOURCE_EXHAUSTED with ErrorInfo and RetryInfo."""

import grpc
import openai
import pytest
from assistd.v1 import model_pb2, model_pb2_grpc, run_service_pb2, run_service_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import MODEL, Server, cassandra_url, drop_keyspace, unique, wait_for

KEYS = "key-a=tenant-a,key-b=tenant-b,key-c=tenant-c"
BURST = 3


def _client(server: Server, key: str) -> openai.OpenAI:
    # max_retries=0: the SDK retries a 429 after its retry-after; the test looks at the 429 itself.
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    status = next(
        status_pb2.Status.FromString(value)
        for key, value in error.trailing_metadata()
        if key == "grpc-status-details-bin"
    )
    info, retry = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
        else:
            detail.Unpack(info)
    return info, retry


def _assert_rate_limited(error: openai.RateLimitError) -> None:
    assert error.status_code == 429
    assert int(error.response.headers["retry-after"]) >= 1
    assert "x-should-retry" not in error.response.headers  # a 429 is worth retrying, later
    body = error.response.json()["error"]
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded" and body["param"] is None
    assert "Rate limit reached" in body["message"]


@pytest.fixture(scope="module")
def rate_server(provider, tmp_path_factory):
    # 0.001 requests per second: after its burst a tenant waits ~1000 s, far longer than the test.
    env = {"ASSISTD_API_KEYS": KEYS, "ASSISTD_TENANT_RPS": "0.001", "ASSISTD_TENANT_BURST": str(BURST)}
    server = Server(tmp_path_factory.mktemp("rate"), provider, env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "cassandra"])
def runs_server(request, provider, tmp_path_factory):
    """Active runs are counted in the store: on SQLite, and on Cassandra (what replicas share)."""
    store = {"ASSISTD_STORE": cassandra_url()} if request.param == "cassandra" else {}
    env = {**store, "ASSISTD_API_KEYS": KEYS, "ASSISTD_TENANT_MAX_ACTIVE_RUNS": "2", "ASSISTD_MAX_JSON_BYTES": "65536"}
    server = Server(tmp_path_factory.mktemp("runs"), provider, env).start()
    yield server
    server.stop()
    if store:
        drop_keyspace(store["ASSISTD_STORE"])


def test_the_request_after_the_burst_is_a_429_with_retry_after(rate_server):
    tenant_a = _client(rate_server, "key-a")
    for _ in range(BURST):
        tenant_a.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        tenant_a.models.list()
    _assert_rate_limited(refused.value)
    with pytest.raises(openai.RateLimitError):  # still over it: no token came back in the meantime
        tenant_a.beta.assistants.create(model=MODEL)
    # Another tenant has its own bucket.
    assert _client(rate_server, "key-b").models.list().data is not None


def test_grpc_calls_over_the_rate_are_resource_exhausted_with_retry_info(rate_server):
    with grpc.insecure_channel(rate_server.grpc_target) as channel:
        models = model_pb2_grpc.ModelServiceStub(channel)
        metadata = [("authorization", "Bearer key-c")]
        for _ in range(BURST):
            models.ListModels(model_pb2.ListModelsRequest(), metadata=metadata)
        with pytest.raises(grpc.RpcError) as refused:
            models.ListModels(model_pb2.ListModelsRequest(), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = _details(refused.value)
    assert info.reason == "RATE_LIMIT_EXCEEDED" and info.metadata["code"] == "rate_limit_exceeded"
    assert retry is not None and retry.retry_delay.seconds >= 1


def test_a_run_over_the_active_run_limit_is_a_429_and_changes_nothing(runs_server, provider):
    tenant_a = _client(runs_server, "key-a")
    assistant = tenant_a.beta.assistants.create(model=MODEL)
    gates = [unique("gate"), unique("gate")]
    held = []
    for gate in gates:  # two runs held in progress by the provider: tenant A's limit
        thread = tenant_a.beta.threads.create(messages=[{"role": "user", "content": f"[gate:{gate}:0] hi"}])
        held.append(tenant_a.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id))
    for gate in gates:
        wait_for(lambda gate=gate: provider.is_held(gate))

    thread = tenant_a.beta.threads.create()
    with pytest.raises(openai.RateLimitError) as refused:
        tenant_a.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "not stored"}],
        )
    _assert_rate_limited(refused.value)
    assert "active run" in refused.value.response.json()["error"]["message"]
    assert tenant_a.beta.threads.runs.list(thread.id).data == []
    assert tenant_a.beta.threads.messages.list(thread.id).data == []

    # A new thread with an attachment would make a vector store: refused, it makes none.
    upload = tenant_a.files.create(file=("notes.txt", b"some notes"), purpose="assistants")
    stores_before = [s.id for s in tenant_a.vector_stores.list().data]
    with pytest.raises(openai.RateLimitError):
        tenant_a.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={
                "messages": [
                    {
                        "role": "user",
                        "content": "search",
                        "attachments": [{"file_id": upload.id, "tools": [{"type": "file_search"}]}],
                    }
                ]
            },
        )
    assert [s.id for s in tenant_a.vector_stores.list().data] == stores_before
    with pytest.raises(openai.RateLimitError):
        tenant_a.responses.create(model=MODEL, input="a response is a run too")

    with grpc.insecure_channel(runs_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as over_grpc:
            run_service_pb2_grpc.RunServiceStub(channel).CreateRun(
                run_service_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id),
                metadata=[("authorization", "Bearer key-a")],
            )
    assert over_grpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = _details(over_grpc.value)
    assert info.reason == "RATE_LIMIT_EXCEEDED" and retry is not None

    # Tenant B's runs are not tenant A's.
    tenant_b = _client(runs_server, "key-b")
    other = tenant_b.beta.threads.create_and_run_poll(
        assistant_id=tenant_b.beta.assistants.create(model=MODEL).id,
        thread={"messages": [{"role": "user", "content": "[reply:tenant b runs]"}]},
    )
    assert other.status == "completed"

    # Once one of A's runs ends, A may start another.
    provider.release(gates[0])
    wait_for(lambda: tenant_a.beta.threads.runs.retrieve(held[0].id, thread_id=held[0].thread_id).status == "completed")
    run = tenant_a.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "[reply:accepted now]"}],
    )
    assert run.status == "completed"
    assert tenant_a.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "accepted now"
    provider.release(gates[1])


def test_a_json_body_over_the_limit_is_a_413_but_uploads_are_not_bound_by_it(runs_server):
    client = _client(runs_server, "key-c")
    with pytest.raises(openai.APIStatusError) as refused:
        client.beta.assistants.create(model=MODEL, instructions="x" * 70_000)
    assert refused.value.status_code == 413
    error = refused.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert client.beta.assistants.list().data == []
    upload = client.files.create(file=("big.txt", b"y" * 200_000), purpose="assistants")
    assert upload.bytes == 200_000
