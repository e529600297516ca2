"""The HTTP edge: OpenAI-style JSON and SSE in front of the gRPC service. No business logic."""

import json
import logging
from typing import Any

import grpc
from aiohttp import web
from assistd.v1 import (
    assistant_pb2,
    container_pb2,
    conversation_pb2,
    file_pb2,
    message_pb2,
    model_pb2,
    run_service_pb2,
    thread_pb2,
    vector_store_pb2,
)
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge import codec, containers, files, openapi_route, sse
from edge.errors import UNEXPLAINED, error_headers, error_response, from_rpc_error, retry_after
from edge.observe import REQUEST_ID_KEY, metrics, observe
from edge.routes import ROUTES, Route
from edge.sse import HEARTBEAT_SECONDS, LOCAL_STREAMS, STREAM, WRITE_TIMEOUT
from service import tracing
from service.errors import InvalidArgument
from service.validation import MAX_JSON_DEPTH, check_json

log = logging.getLogger(__name__)

_FILES = [
    assistant_pb2,
    thread_pb2,
    message_pb2,
    run_service_pb2,
    model_pb2,
    file_pb2,
    vector_store_pb2,
    conversation_pb2,
    container_pb2,
]
CHANNEL = web.AppKey("channel", grpc.aio.Channel)
# Unary calls to the service have this deadline (DEADLINE_EXCEEDED is 504): a stalled service
# cannot hold an edge request open forever. Streams have none: a run ends them.
UNARY_DEADLINE_SECONDS = web.AppKey("unary_deadline_seconds", float)


def _method(route: Route, rpc: str):
    """(request class, response class, full gRPC method path) of a route's RPC."""
    for file in _FILES:
        service = file.DESCRIPTOR.services_by_name.get(route.service)
        if service is not None:
            method = service.methods_by_name[rpc]
            return (
                message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type),
                f"/{service.full_name}/{rpc}",
            )
    raise KeyError(route.service)


def _safe(value: str) -> bool:
    """gRPC metadata values must be printable ASCII."""
    return value.isascii() and value.isprintable()


def _metadata(request: web.Request) -> list[tuple[str, str]]:
    metadata = [("x-request-id", request[REQUEST_ID_KEY])]
    authorization = request.headers.get("Authorization", "")
    if authorization and _safe(authorization):
        metadata.append(("authorization", authorization))
    return tracing.inject(metadata)


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise codec.CodecError(
            "We could not parse the JSON body of your request. The API expects a JSON payload.", None, "invalid_json"
        ) from None
    except RecursionError:
        raise codec.CodecError(
            f"The JSON body of your request is nested too deeply (at most {MAX_JSON_DEPTH} levels).",
            None,
            "nesting_too_deep",
        ) from None
    if not isinstance(body, dict):
        raise codec.CodecError("The request body must be a JSON object.", None, "invalid_json")
    check_json(body)
    return body


def _no_constant(name: str):
    """Infinity, -Infinity and NaN are not JSON (Python's parser takes them)."""
    raise ValueError(name)


def _render_response(response) -> dict:
    """A unary response as OpenAI JSON: lists get `object: list`, single wrappers are unwrapped."""
    fields = response.DESCRIPTOR.fields
    if "data" in response.DESCRIPTOR.fields_by_name:
        return {"object": "list", **codec.render(response)}
    (only,) = fields
    return codec.render(getattr(response, only.name))


class Handler:
    def __init__(self, route: Route):
        self.route = route
        self.unary = _method(route, route.rpc)
        self.stream = _method(route, route.stream_rpc) if route.stream_rpc else None

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request) if request.method == "POST" else {}
        stream = body.pop("stream", None)
        if stream is not None and not isinstance(stream, bool):
            raise codec.CodecError(
                f"Invalid type for 'stream': expected a boolean, but got {codec._json_type(stream)} instead.", "stream"
            )
        request_cls, response_cls, path = self.unary
        check_json(dict(request.query))
        check_json(dict(request.match_info))
        data = {**body, **codec.query_to_json(request.query, request_cls), **request.match_info}
        message = codec.parse(data, request_cls)
        channel = request.app[CHANNEL]
        if self.route.always_stream:
            after = request.headers.get("Last-Event-ID") or request.query.get("after_sequence")
            if after:
                if not (after.isascii() and after.isdigit()) or len(after) > 20 or int(after) >= 2**64:
                    raise codec.CodecError(
                        "Invalid 'Last-Event-ID': expected a sequence number (0 to 2^64-1).", "after_sequence"
                    )
                message.after_sequence = int(after)  # type: ignore[attr-defined]  # WatchRunRequest
            return await sse.pump(request, channel, path, message, response_cls, _metadata(request), sse.ASSISTANTS)
        if stream and self.stream is not None:
            _, stream_response_cls, stream_path = self.stream  # the streaming twin takes the same request
            return await sse.pump(
                request, channel, stream_path, message, stream_response_cls, _metadata(request), sse.ASSISTANTS
            )
        call = channel.unary_unary(
            path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString
        )
        response = await call(message, metadata=_metadata(request), timeout=request.app[UNARY_DEADLINE_SECONDS])
        return web.json_response(_render_response(response), dumps=lambda o: json.dumps(o, separators=(",", ":")))


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Every failure leaves as an OpenAI error envelope; every response carries x-request-id
    (given by edge/observe.py, the outer middleware)."""
    try:
        response = await handler(request)
    except ConnectionResetError:
        raise  # the client hung up: nothing to answer (edge/observe.py logs it)
    except (codec.CodecError, InvalidArgument) as error:
        response = error_response(400, error.message, param=error.param, code=error.code)
    except grpc.aio.AioRpcError as error:
        status, body = from_rpc_error(error)
        if status >= 500:
            log.error("%s %s -> %s: %s", request.method, request.path, error.code().name, error.details())
        response = web.json_response(body, status=status, headers=error_headers(status, retry_after(error)))
    except web.HTTPNotFound:
        response = error_response(404, f"Invalid URL ({request.method} {request.path})")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, f"Invalid method for URL ({request.method} {request.path})")
    except web.HTTPRequestEntityTooLarge as error:
        response = error_response(413, error.text or "Request body too large.", code="request_too_large")
    except web.HTTPException as error:
        response = error_response(error.status, error.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        started = request.get(STREAM)
        if started is not None and started.prepared:
            return started  # its status line is sent: aiohttp ends the body, no second response
        response = error_response(500, UNEXPLAINED, "server_error")
    if not response.prepared:
        response.headers["x-request-id"] = request[REQUEST_ID_KEY]
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the gRPC service says SERVING."""
    stub = health_pb2_grpc.HealthStub(request.app[CHANNEL])
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        serving = False
    return web.json_response({"status": "ok" if serving else "unavailable"}, status=200 if serving else 503)


def create_app(
    target: str,
    heartbeat_seconds: float = 15.0,
    local_streams: Any = None,
    unary_deadline_seconds: float = 60.0,
    write_timeout: float = 30.0,
    max_json_bytes: int = 4 * 1024 * 1024,
) -> web.Application:
    """The edge, calling the service at target; with local_streams (the service's LocalStreams,
    when it runs in this process), run streams skip the gRPC hop."""
    # client_max_size bounds the JSON bodies (413 over it); uploads are read as a stream, bounded by
    # the service's ASSISTD_MAX_FILE_BYTES instead.
    app = web.Application(middlewares=[observe, errors_middleware], client_max_size=max_json_bytes)
    app[HEARTBEAT_SECONDS] = heartbeat_seconds
    app[UNARY_DEADLINE_SECONDS] = unary_deadline_seconds
    app[WRITE_TIMEOUT] = write_timeout
    if local_streams is not None:
        app[LOCAL_STREAMS] = local_streams
        app[sse.SHARED_FRAMES] = sse.SharedFrames()

    async def channel_context(app: web.Application):
        app[CHANNEL] = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        yield
        await app[CHANNEL].close()

    app.cleanup_ctx.append(channel_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    openapi_route.setup(app)

    async def upload_file(request: web.Request) -> web.Response:
        return web.json_response(await files.upload_file(request, request.app[CHANNEL], _metadata(request)))

    async def file_content(request: web.Request) -> web.StreamResponse:
        return await files.file_content(request, request.app[CHANNEL], _metadata(request))

    async def create_container_file(request: web.Request) -> web.Response:
        body = None if request.content_type.startswith("multipart/") else await _body(request)
        created = await containers.create_file(request, request.app[CHANNEL], _metadata(request), body)
        return web.json_response(created)

    async def container_file_content(request: web.Request) -> web.StreamResponse:
        return await containers.file_content(request, request.app[CHANNEL], _metadata(request))

    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_post("/v1/containers/{container_id}/files", create_container_file)
    app.router.add_get("/v1/containers/{container_id}/files/{file_id}/content", container_file_content)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, Handler(route))
    from edge import responses

    responses.add_routes(app)
    return app
