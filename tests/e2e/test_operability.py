"""What operators and load tools need from the gRPC server: reflection v1 that resolves method
symbols (ghz, grpcurl), a port that two processes cannot share, and the edge's deadline on
unary calls."""

import json
import subprocess
import sys

import grpc
import openai
import pytest
from assistd.v1 import model_pb2, model_pb2_grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

from tests.conftest import ROOT, Server
from tests.perf.bench_ghz import ghz_path

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _reflect_v1(target: str, *requests: reflection_pb2.ServerReflectionRequest) -> list:
    """Asks the v1 service, as grpcurl and ghz do first. v1 and v1alpha messages are the same on the
    wire (only the package differs), so the v1alpha classes encode a v1 client's bytes."""
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(
            V1,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return list(call(iter(requests), timeout=10))


def _pool_of(response) -> descriptor_pool.DescriptorPool:
    """A fresh pool built only from what reflection sent (the file and its dependencies)."""
    files = {}
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    return pool


def test_reflection_v1_resolves_method_symbols(server):
    symbols = ["assistd.v1.RunService.CreateThreadAndRunStream", "assistd.v1.ModelService.ListModels"]
    responses = _reflect_v1(
        server.grpc_target,
        *(reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="assistd.v1.RunService.NoSuchMethod"),
        reflection_pb2.ServerReflectionRequest(list_services=""),
    )
    for symbol, response in zip(symbols, responses, strict=False):
        method = _pool_of(response).FindMethodByName(symbol)  # the whole type graph came along
        assert method.full_name == symbol
    stream = _pool_of(responses[0]).FindMethodByName(symbols[0])
    assert stream.server_streaming and stream.input_type.full_name == "assistd.v1.CreateThreadAndRunRequest"
    assert responses[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    names = {s.name for s in responses[3].list_services_response.service}
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert "assistd.v1.RunService" in names


def test_reflection_v1_describes_itself(server):
    (response,) = _reflect_v1(
        server.grpc_target,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    )
    service = _pool_of(response).FindServiceByName("grpc.reflection.v1.ServerReflection")
    method = service.methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"


def test_ghz_calls_a_method_found_by_reflection(server):
    assert ghz_path().exists(), "ghz is not built: make install builds it (make ghz)"
    done = subprocess.run(
        [str(ghz_path()), "--insecure", "--call", "assistd.v1.ModelService/ListModels", "-n", "5", "-c", "1"]
        + ["--format", "json", server.grpc_target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 5 and not report.get("errorDistribution"), report
    assert report["statusCodeDistribution"] == {"OK": 5}


def _serve(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _answers(target: str) -> bool:
    """A unary call on a new channel (a new connection, which a port shared by SO_REUSEPORT could
    hand to the other process)."""
    with grpc.insecure_channel(target) as channel:
        stub = model_pb2_grpc.ModelServiceStub(channel)
        return stub.ListModels(model_pb2.ListModelsRequest(), timeout=10) is not None


@pytest.mark.parametrize("shared", ["grpc", "http"])
def test_a_second_server_on_a_port_in_use_exits_and_the_first_keeps_serving(provider, tmp_path, shared):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = Server(tmp_path / "first", provider).start()
    try:
        port = {
            "grpc": {"ASSISTD_GRPC_PORT": str(first.grpc_port)},
            "http": {"ASSISTD_HTTP_PORT": str(first.http_port)},
        }
        second = Server(tmp_path / "second", provider, port[shared])
        done = _serve(second.env)
        assert done.returncode == 1, done.stderr[-2000:]
        assert "cannot start" in done.stderr and "in use" in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert "assistd ready" not in done.stdout
        assert all(_answers(first.grpc_target) for _ in range(8))
        client = first.client()
        assert client.models.list().data is not None
        if shared == "http":  # the second one gave its gRPC port back when its HTTP port failed
            with grpc.insecure_channel(second.grpc_target) as channel:
                with pytest.raises(grpc.RpcError):
                    model_pb2_grpc.ModelServiceStub(channel).ListModels(model_pb2.ListModelsRequest(), timeout=2)
    finally:
        first.stop()


def test_the_edge_gives_up_on_a_unary_call_at_its_deadline(provider, tmp_path):
    """A deadline already past when the call leaves: the service never answers in time, so every
    unary request is a 504 in OpenAI's error shape."""
    server = Server(tmp_path, provider, {"ASSISTD_EDGE_DEADLINE_SECONDS": "0.000001"}).start()
    try:
        client = server.client()
        with pytest.raises(openai.InternalServerError) as raised:
            client.models.list()
        assert raised.value.status_code == 504
        assert raised.value.body["type"] == "server_error"
    finally:
        server.stop()
