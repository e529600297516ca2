"""A minimal grpc.aio relay: the provider's stream passed through as one gRPC message per chunk.

A server-streaming method `/relay.Relay/Stream` (raw bytes, no protobuf: the request is the chat
request's JSON, each response message a provider chunk's JSON) over one shared aiohttp pool. Like
relay_sse.py it bounds what a Python gRPC server can do with the same stream. It also serves the
standard health service with reflection, a floor for ghz's unary figures.
`python -m tests.perf.relay_grpc PORT UPSTREAM`
"""

import sys

import aiohttp
import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service import reflection

METHOD = "/relay.Relay/Stream"


def handler(session: aiohttp.ClientSession, upstream: str) -> grpc.GenericRpcHandler:
    async def stream(request: bytes, context: grpc.aio.ServicerContext):
        async with session.post(
            upstream + "/chat/completions", data=request, headers={"Content-Type": "application/json"}
        ) as response:
            async for line in response.content:
                if line.startswith(b"data:"):
                    yield line[5:].strip()

    method = grpc.unary_stream_rpc_method_handler(stream)  # no (de)serializers: bytes in, bytes out
    return grpc.method_handlers_generic_handler("relay.Relay", {"Stream": method})


async def serve(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler(session, upstream),))
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable([health.SERVICE_NAME], server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    print("relay ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
