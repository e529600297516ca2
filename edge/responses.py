"""/v1/responses: the Responses API's routes. The JSON travels as it is (a Struct) to the
ResponseService; its streams go out as OpenAI's Responses SSE: `event: <type>` + `data: <event>`
per event, and no `[DONE]`."""

import asyncio
import json
from typing import Any

import grpc
from aiohttp import web
from assistd.v1 import response_pb2
from google.protobuf import json_format, struct_pb2

from edge import codec, sse
from edge.app import CHANNEL, HEARTBEAT_SECONDS, LOCAL_STREAMS, MAX_FRAMES_PER_WRITE, _body, _metadata
from edge.errors import from_rpc_error
from service.protojson import struct_to_python

_SERVICE = "/assistd.v1.ResponseService/"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json(value: Any) -> web.Response:
    return web.json_response(value, dumps=_dumps)


async def _unary(request: web.Request, rpc: str, message, response_cls):
    call = request.app[CHANNEL].unary_unary(
        _SERVICE + rpc,
        request_serializer=type(message).SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    return await call(message, metadata=_metadata(request))


def _plain(value: struct_pb2.Value) -> Any:
    """A Struct value as plain JSON, whole numbers as integers: struct_to_python's result, for the
    hot path of a stream at a fraction of json_format's cost."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind == "struct_value":
        return {key: _plain(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    return None


def _frame(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


async def _stream(request: web.Request, rpc: str, message, response_cls) -> web.StreamResponse:
    """The RPC's ResponseEvents as SSE. An error before the first event keeps its HTTP status;
    later it goes in-band as an `error` event. Heartbeat comments cover silent stretches."""
    local: Any = request.app.get(LOCAL_STREAMS)
    call = None
    if local is not None:  # the service is in this process: no loopback gRPC hop
        responses = local(_SERVICE + rpc, message, _metadata(request))
    else:
        call = request.app[CHANNEL].unary_stream(
            _SERVICE + rpc,
            request_serializer=type(message).SerializeToString,
            response_deserializer=response_cls.FromString,
        )(message, metadata=_metadata(request))
        responses = aiter(call)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "x-request-id": request["request_id"],
        }
    )
    reading = asyncio.ensure_future(anext(responses))
    last = -1
    frames: list[bytes] = []  # events that arrived together go out in one write
    try:
        try:
            while True:
                if not reading.done():
                    if frames:
                        await response.write(b"".join(frames))
                        frames.clear()
                    if not (await asyncio.wait({reading}, timeout=request.app[HEARTBEAT_SECONDS]))[0]:
                        if not response.prepared:
                            await response.prepare(request)
                        await response.write(sse.HEARTBEAT)
                        continue
                try:
                    item = reading.result()
                except StopAsyncIteration:
                    break
                if not response.prepared:
                    await response.prepare(request)
                event = {key: _plain(value) for key, value in item.event.data.fields.items()}
                last = event["sequence_number"]
                frames.append(_frame(event))
                reading = asyncio.ensure_future(anext(responses))
                if len(frames) < MAX_FRAMES_PER_WRITE:
                    await asyncio.sleep(0)  # one loop turn: an event already there is read at once
        except grpc.aio.AioRpcError as error:
            if not response.prepared:
                raise  # nothing sent yet: a plain JSON error with its HTTP status
            body = from_rpc_error(error)[1]["error"]
            frames.append(_frame({"type": "error", **body, "sequence_number": last + 1}))
        if not response.prepared:
            await response.prepare(request)
        await response.write(b"".join(frames))
        await response.write_eof()
        return response
    finally:
        reading.cancel()
        if call is not None:
            call.cancel()
        else:
            await asyncio.gather(reading, return_exceptions=True)
            await responses.aclose()


async def create_response(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    stream = body.pop("stream", None)
    if stream is not None and not isinstance(stream, bool):
        raise codec.CodecError(
            f"Invalid type for 'stream': expected a boolean, but got {codec._json_type(stream)} instead.", "stream"
        )
    struct = json_format.ParseDict(body, struct_pb2.Struct())
    if stream:
        message = response_pb2.CreateResponseStreamRequest(body=struct)
        return await _stream(request, "CreateResponseStream", message, response_pb2.CreateResponseStreamResponse)
    reply = await _unary(
        request, "CreateResponse", response_pb2.CreateResponseRequest(body=struct), response_pb2.CreateResponseResponse
    )
    return _json(struct_to_python(reply.response))


async def get_response(request: web.Request) -> web.StreamResponse:
    response_id = request.match_info["response_id"]
    if request.query.get("stream") == "true":
        message = response_pb2.WatchResponseRequest(response_id=response_id)
        after = request.query.get("starting_after")
        if after is not None:
            if not after.isdigit():
                raise codec.CodecError("Invalid 'starting_after': expected an integer.", "starting_after")
            message.starting_after = int(after)
        return await _stream(request, "WatchResponse", message, response_pb2.WatchResponseResponse)
    reply = await _unary(
        request,
        "GetResponse",
        response_pb2.GetResponseRequest(response_id=response_id),
        response_pb2.GetResponseResponse,
    )
    return _json(struct_to_python(reply.response))


async def delete_response(request: web.Request) -> web.Response:
    message = response_pb2.DeleteResponseRequest(response_id=request.match_info["response_id"])
    reply = await _unary(request, "DeleteResponse", message, response_pb2.DeleteResponseResponse)
    return _json({"id": reply.id, "object": reply.object, "deleted": reply.deleted})


async def cancel_response(request: web.Request) -> web.Response:
    message = response_pb2.CancelResponseRequest(response_id=request.match_info["response_id"])
    reply = await _unary(request, "CancelResponse", message, response_pb2.CancelResponseResponse)
    return _json(struct_to_python(reply.response))


async def list_input_items(request: web.Request) -> web.Response:
    query = request.query
    message = response_pb2.ListInputItemsRequest(
        response_id=request.match_info["response_id"],
        order=query.get("order", ""),
        after=query.get("after", ""),
        before=query.get("before", ""),
    )
    if "limit" in query:
        if not query["limit"].lstrip("-").isdigit():
            raise codec.CodecError("Invalid 'limit': expected an integer.", "limit")
        message.limit = int(query["limit"])
    reply = await _unary(request, "ListInputItems", message, response_pb2.ListInputItemsResponse)
    return _json(
        {
            "object": "list",
            "data": [struct_to_python(item) for item in reply.data],
            "first_id": reply.first_id or None,
            "last_id": reply.last_id or None,
            "has_more": reply.has_more,
        }
    )


async def count_input_tokens(request: web.Request) -> web.Response:
    struct = json_format.ParseDict(await _body(request), struct_pb2.Struct())
    message = response_pb2.CountInputTokensRequest(body=struct)
    reply = await _unary(request, "CountInputTokens", message, response_pb2.CountInputTokensResponse)
    return _json({"object": "response.input_tokens", "input_tokens": reply.input_tokens})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses", create_response)
    app.router.add_post("/v1/responses/input_tokens", count_input_tokens)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_post("/v1/responses/{response_id}/cancel", cancel_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)
