"""OpenTelemetry tracing: a run is one trace from the edge's HTTP request through the gRPC call
to the run segment and its model call, exported over OTLP to a real collector endpoint."""

import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import MODEL, Server


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace endpoint that keeps every span it is sent, with its service's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                names = [a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"]
                for scope in resource_spans.scope_spans:
                    self.spans.extend((names[0] if names else "", span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, predicate, timeout: float = 30.0) -> list[tuple[str, object]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"spans never arrived; got {[(s, span.name) for s, span in spans]}")


def _attributes(span) -> dict:
    values = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return values


def test_a_run_is_one_trace_across_edge_service_and_provider(provider, tmp_path):
    collector = Collector()
    collector.server.start()
    tracing_env = {
        "ASSISTD_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    service = Server(tmp_path, provider, tracing_env).start("service")
    edge = Server(tmp_path, provider, {**tracing_env, "ASSISTD_GRPC_TARGET": service.grpc_target})
    try:
        edge.start("edge")
        client = edge.client()
        assistant = client.beta.assistants.create(model=MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:traced]"}])
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            assert "".join(stream.text_deltas) == "traced"
            run = stream.get_final_run()

        def complete(spans) -> bool:
            names = {span.name for _, span in spans}
            return {"POST /v1/threads/{thread_id}/runs", "run segment", f"chat {MODEL}"} <= names

        spans = collector.wait_for(complete)
    finally:
        edge.stop()
        service.stop()
        collector.server.stop(0)

    by_name = {span.name: (service_name, span) for service_name, span in spans}
    edge_service, http = by_name["POST /v1/threads/{thread_id}/runs"]
    rpc_service, rpc = by_name["assistd.v1.RunService/CreateRunStream"]
    run_service, segment = by_name["run segment"]
    _, model_call = by_name[f"chat {MODEL}"]
    # two processes, one trace: edge -> gRPC call -> run segment -> model call
    assert (edge_service, rpc_service, run_service) == ("assistd-edge", "assistd", "assistd")
    assert http.trace_id == rpc.trace_id == segment.trace_id == model_call.trace_id
    assert rpc.parent_span_id == http.span_id
    assert segment.parent_span_id == rpc.span_id
    assert model_call.parent_span_id == segment.span_id
    assert _attributes(http)["http.response.status_code"] == 200
    assert _attributes(segment)["assistd.run_id"] == run.id
    assert _attributes(segment)["assistd.outcome"] == "completed"
    call = _attributes(model_call)
    assert call["gen_ai.request.model"] == MODEL
    assert call["gen_ai.usage.output_tokens"] == run.usage.completion_tokens
    assert call["assistd.time_to_first_token_ms"] > 0
