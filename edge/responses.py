"""/v1/responses: the Responses API's routes. The request JSON travels as it is (a Struct) to the
ResponseService; the typed `Response` and `ResponseEvent`s it answers with are written as OpenAI's
JSON by the codec, and its streams go out as OpenAI's Responses SSE: `event: <type>` +
`data: <event>` per event, and no `[DONE]`."""

import json
from typing import Any

from aiohttp import web
from assistd.v1 import response_pb2
from google.protobuf import json_format, struct_pb2

from edge import codec, sse
from edge.app import CHANNEL, _body, _metadata
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


def event_json(event: response_pb2.ResponseEvent) -> dict[str, Any]:
    """A typed event as OpenAI's JSON: its type, its sequence number and its payload's fields."""
    payload = event.WhichOneof("payload")
    fields = codec.render(getattr(event, payload)) if payload else {}
    return {"type": event.type, "sequence_number": event.sequence_number, **fields}


class _Dialect:
    """The Responses dialect: `event: <type>` + `data: <event>` per event and no [DONE]; an error
    after the stream began is an `error` event (the spec's ResponseErrorEvent), numbered after the
    last event sent."""

    shares_events = False  # each stream's events are its own objects

    def __init__(self) -> None:
        self.last = -1  # the sequence number of the last event encoded

    def encode(self, item: Any) -> bytes:
        event = item.event
        self.last = event.sequence_number
        return _frame(event_json(event))

    def error(self, body: dict) -> bytes:
        error = body["error"]
        return _frame(
            {
                "type": "error",
                "code": error.get("code") or error.get("type"),  # the event has no `type` of its own
                "message": error["message"],
                "param": error.get("param"),
                "sequence_number": self.last + 1,
            }
        )


def _frame(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


async def _stream(request: web.Request, rpc: str, message, response_cls) -> web.StreamResponse:
    return await sse.pump(
        request, request.app[CHANNEL], _SERVICE + rpc, message, response_cls, _metadata(request), _Dialect()
    )


def _rpc(name: str):
    """Names a handler's RPC, for GET /openapi.json (edge/openapi.py's OPERATIONS types it)."""

    def mark(handler):
        handler.rpc = name
        return handler

    return mark


@_rpc("CreateResponse")
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
    return _json(codec.render(reply.response))


@_rpc("GetResponse")
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
    return _json(codec.render(reply.response))


@_rpc("DeleteResponse")
async def delete_response(request: web.Request) -> web.Response:
    message = response_pb2.DeleteResponseRequest(response_id=request.match_info["response_id"])
    reply = await _unary(request, "DeleteResponse", message, response_pb2.DeleteResponseResponse)
    return _json({"id": reply.id, "object": reply.object, "deleted": reply.deleted})


@_rpc("CancelResponse")
async def cancel_response(request: web.Request) -> web.Response:
    message = response_pb2.CancelResponseRequest(response_id=request.match_info["response_id"])
    reply = await _unary(request, "CancelResponse", message, response_pb2.CancelResponseResponse)
    return _json(codec.render(reply.response))


@_rpc("ListInputItems")
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
        limit = int(query["limit"])
        if not -(2**31) <= limit < 2**31:  # the message's int32 (the service checks 1..100)
            raise codec.CodecError(f"Invalid 'limit': {limit} is out of range.", "limit", "integer_out_of_range")
        message.limit = limit
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


@_rpc("CountInputTokens")
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
