"""What operators get: /metrics on both processes (read back after driving runs), structured
JSON logs with request ids (a client that hangs up is one INFO line, never an error), /readyz.

Each test starts its own `assistd` processes, so the counters start at zero and can be checked
exactly."""

import json
import socket

import grpc
import httpx
import pytest
from assistd.v1 import run_service_pb2, run_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import store_ready
from service.store.sqlite import SqliteStore
from tests.conftest import MODEL, Server, free_port, unique, wait_for

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def _samples(url: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} of a /metrics page."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _log_lines(server: Server) -> list[dict]:
    return [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
def fresh(provider, tmp_path):
    server = Server(tmp_path, provider).start()
    yield server
    server.stop()


def test_metrics_count_runs_tokens_latencies_and_errors(fresh):
    client = fresh.client()
    assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": '[call:get_weather:{"city": "Oslo"}]'}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
    waiting = stream.get_final_run()
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=waiting.id, tool_outputs=[{"tool_call_id": call.id, "output": "4C"}]
    ) as stream:
        assert "".join(stream.text_deltas) == "Results: 4C"
    run = stream.get_final_run()
    failing = client.beta.threads.create(messages=[{"role": "user", "content": "[error:500]"}])
    failed = client.beta.threads.runs.create_and_poll(
        thread_id=failing.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert failed.status == "failed"
    assert httpx.get(f"{fresh.base_url}/threads/{thread.id}/runs/run_nope", timeout=10).status_code == 404
    events = httpx.get(f"{fresh.base_url}/threads/{thread.id}/runs/{run.id}/events", timeout=10).text
    last_sequence = max(int(line[4:]) for line in events.splitlines() if line.startswith("id: "))

    m = _samples(f"http://127.0.0.1:{fresh.http_port}/metrics")
    # runs: how many, how they ended, which model
    assert _value(m, "assistd_runs_created_total", model=MODEL) == 2
    assert _value(m, "assistd_runs_finished_total", status="completed", model=MODEL) == 1
    assert _value(m, "assistd_runs_finished_total", status="failed", model=MODEL) == 1
    assert _value(m, "assistd_runs_requires_action_total", model=MODEL) == 1
    # tokens by model and tenant: exactly what the run reports
    tenant = {"model": MODEL, "tenant": "default"}
    assert _value(m, "assistd_tokens_total", **tenant, kind="prompt") == run.usage.prompt_tokens > 0
    assert _value(m, "assistd_tokens_total", **tenant, kind="completion") == run.usage.completion_tokens > 0
    # how fast: one time-to-first-token per segment that wrote something (the call, then the answer)
    assert _value(m, "assistd_run_time_to_first_token_seconds_count", model=MODEL) == 2
    assert _value(m, "assistd_provider_time_to_first_token_seconds_count", model=MODEL) == 2
    assert _value(m, "assistd_provider_request_seconds_count", model=MODEL, outcome="ok") == 2
    assert _value(m, "assistd_provider_request_seconds_count", model=MODEL, outcome="server_error") == 1
    assert _value(m, "assistd_provider_errors_total", model=MODEL, code="server_error") == 1
    # the event log: every event of the two runs committed once
    failed_events = httpx.get(f"{fresh.base_url}/threads/{failing.id}/runs/{failed.id}/events", timeout=10).text
    committed = last_sequence + sum(line.startswith("id: ") for line in failed_events.splitlines())
    assert _value(m, "assistd_event_log_events_total") == committed
    assert 1 <= _value(m, "assistd_event_log_commit_seconds_count") <= committed
    assert _value(m, "assistd_store_operation_seconds_count", operation="get") > 0
    assert ("assistd_store_errors_total", frozenset()) not in m  # a labelled family: no failures, no samples
    # the HTTP edge, by route template and status
    runs_route = {"method": "POST", "route": "/v1/threads/{thread_id}/runs"}
    assert _value(m, "assistd_http_requests_total", **runs_route, status="200") == 2
    run_route = {"method": "GET", "route": "/v1/threads/{thread_id}/runs/{run_id}"}
    assert _value(m, "assistd_http_requests_total", **run_route, status="404") == 1
    assert _value(m, "assistd_http_request_duration_seconds_count", **runs_route) == 2
    assert _value(m, "assistd_http_requests_in_flight", route="/v1/threads/{thread_id}/runs") == 0
    # the gRPC server's own
    stream_rpc = {"grpc_service": "RunService", "grpc_method": "CreateRunStream"}
    assert _value(m, "grpc_server_handled_total", **stream_rpc, grpc_code="OK") == 1
    assert _value(m, "grpc_server_streams_active", **stream_rpc) == 0
    assert _value(m, "grpc_server_msg_sent_total", **stream_rpc) == waiting_events(events)
    get_run = {"grpc_service": "RunService", "grpc_method": "GetRun"}
    assert _value(m, "grpc_server_handled_total", **get_run, grpc_code="NOT_FOUND") == 1
    assert _value(m, "process_cpu_seconds_total") > 0  # the process collector is there too
    assert not [key for key in m if ("model", "unknown") in key[1]]  # every run event was told its model


def waiting_events(events: str) -> int:
    """Events of a run's first segment (up to its first `done`) in an SSE text."""
    names = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    return names.index("done") + 1


def test_a_client_that_disconnects_is_one_info_line_with_its_request_id(fresh):
    client = fresh.client()
    assistant = client.beta.assistants.create(model=MODEL)
    hung_up = [unique("req_hangup") for _ in range(4)]
    for request_id in hung_up:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:400]"}])
        body = {"assistant_id": assistant.id, "stream": True}
        with httpx.stream(
            "POST",
            f"{fresh.base_url}/threads/{thread.id}/runs",
            json=body,
            headers={"X-Request-Id": request_id},
            timeout=30,
        ) as response:
            assert response.headers["x-request-id"] == request_id
            for i, _ in enumerate(response.iter_lines()):
                if i == 12:
                    break  # hang up mid-answer, whether the edge is writing or waiting
    wait_for(lambda: all(any(line.get("request_id") == r for line in _log_lines(fresh)) for r in hung_up))
    lines = _log_lines(fresh)
    for request_id in hung_up:
        (line,) = [line for line in lines if line.get("request_id") == request_id]
        assert line["level"] == "INFO" and line["event"] == "client_disconnected" and line["status"] == 499
        assert line["route"] == "/v1/threads/{thread_id}/runs"
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    # every request has its line, with the id the response carried
    created = client.beta.threads.with_raw_response.create()
    request_id = created.headers["x-request-id"]
    wait_for(lambda: any(line.get("request_id") == request_id for line in _log_lines(fresh)))
    (line,) = [line for line in _log_lines(fresh) if line.get("request_id") == request_id]
    assert (line["logger"], line["status"], line["route"]) == ("edge.access", 200, "/v1/threads")


def test_the_service_alone_serves_metrics_and_readyz(provider, tmp_path):
    metrics_port = free_port()
    service = Server(tmp_path, provider, {"ASSISTD_METRICS_PORT": str(metrics_port)}).start("service")
    try:
        with pytest.raises(OSError):  # no HTTP edge in this process
            socket.create_connection(("127.0.0.1", service.http_port), timeout=1).close()
        runs = run_service_pb2_grpc.RunServiceStub(grpc.insecure_channel(service.grpc_target))
        with pytest.raises(grpc.RpcError):
            runs.GetRun(run_service_pb2.GetRunRequest(thread_id="thread_x", run_id="run_x"))
        admin = f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{admin}/readyz", timeout=10).json() == {"status": "ok"}
        m = _samples(f"{admin}/metrics")
        labels = {"grpc_service": "RunService", "grpc_method": "GetRun"}
        assert _value(m, "grpc_server_handled_total", **labels, grpc_code="NOT_FOUND") == 1
        assert not any(name.startswith("assistd_http_") for name, _ in m)  # no edge in this process
    finally:
        service.stop()


async def test_readiness_follows_the_store(tmp_path):
    store = SqliteStore(str(tmp_path / "ready.db"))
    await store.open()
    assert await store_ready(store)
    await store.close()
    assert not await store_ready(store)
