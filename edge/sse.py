"""The edge's one SSE pump, and the Assistants dialect: RunEvents as OpenAI's Assistants streams
look on the wire. Each dialect (this one, edge/responses.py's) only says how an event is encoded
and how an in-band error ends its stream; the pump does the rest for both: heartbeats, coalesced
writes, the write timeout, and errors after the first byte told in-band."""

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from aiohttp import web
from assistd.v1 import message_pb2, run_pb2

from edge.codec import render
from edge.errors import UNEXPLAINED, error_body, from_rpc_error
from edge.observe import REQUEST_ID_KEY

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = web.AppKey("heartbeat_seconds", float)
WRITE_TIMEOUT = web.AppKey("write_timeout", float)  # seconds a stream write may wait for the client
MAX_FRAMES_PER_WRITE = 64  # SSE frames coalesced into one socket write at most (bounds the delay)
# Set when the service runs in this process (assistd serve): streams are followed without gRPC.
LOCAL_STREAMS = web.AppKey("local_streams", object)
STREAM = web.RequestKey("stream", web.StreamResponse)  # the SSE response of a streaming request, once made

E = run_pb2
# THE table RunEventType -> OpenAI SSE event name.
EVENT_NAMES: dict[int, str] = {
    E.RUN_EVENT_TYPE_THREAD_CREATED: "thread.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_CREATED: "thread.run.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED: "thread.run.queued",
    E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS: "thread.run.in_progress",
    E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION: "thread.run.requires_action",
    E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED: "thread.run.completed",
    E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE: "thread.run.incomplete",
    E.RUN_EVENT_TYPE_THREAD_RUN_FAILED: "thread.run.failed",
    E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING: "thread.run.cancelling",
    E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED: "thread.run.cancelled",
    E.RUN_EVENT_TYPE_THREAD_RUN_EXPIRED: "thread.run.expired",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED: "thread.run.step.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS: "thread.run.step.in_progress",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA: "thread.run.step.delta",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED: "thread.run.step.completed",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED: "thread.run.step.failed",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED: "thread.run.step.cancelled",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED: "thread.run.step.expired",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED: "thread.message.created",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS: "thread.message.in_progress",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA: "thread.message.delta",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED: "thread.message.completed",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE: "thread.message.incomplete",
    E.RUN_EVENT_TYPE_DONE: "done",
}
_DELTAS = {"run_step_delta", "message_delta"}

# A bare comment line, with no blank line after it: the openai SDK's decoder keeps the last `id:`
# and would dispatch a blank line after a comment as an empty event (json.loads("") fails).
HEARTBEAT = b": keep-alive\n"


def encode(event: run_pb2.RunEvent) -> bytes:
    """One SSE frame: `event:`, `id:` (the sequence number) and `data:`, ended by a blank line."""
    name = EVENT_NAMES[event.event]
    payload = event.WhichOneof("data")
    if event.event == E.RUN_EVENT_TYPE_DONE:
        data = "[DONE]"
    elif payload == "message_delta" and (text := _text_delta(event.message_delta)) is not None:
        data = text
    elif payload == "run_step_delta" and (arguments := _arguments_delta(event.run_step_delta)) is not None:
        data = arguments
    else:
        data = json.dumps(render(getattr(event, payload), delta=payload in _DELTAS), separators=(",", ":"))
    return f"event: {name}\nid: {event.sequence_number}\ndata: {data}\n\n".encode()


def encode_error(body: dict) -> bytes:
    """An `error` frame for a failure after the stream began, then the SDK's terminator."""
    return f"event: error\ndata: {json.dumps(body)}\n\nevent: done\ndata: [DONE]\n\n".encode()


def _text_delta(event: message_pb2.MessageDeltaEvent) -> str | None:
    """The JSON of the commonest event by far, one fragment of text, written out directly (the
    generic codec costs ~10x more); None for any other shape. Byte for byte what render() gives."""
    delta = event.delta
    if delta.HasField("role") or len(delta.content) != 1:
        return None
    part = delta.content[0]
    if part.WhichOneof("kind") != "text" or part.text.annotations or not part.text.HasField("value"):
        return None
    return (
        f'{{"id":{json.dumps(event.id)},"object":{json.dumps(event.object)},"delta":{{"content":'
        f'[{{"type":"text","index":{part.index},"text":{{"value":{json.dumps(part.text.value)}}}}}]}}}}'
    )


def _arguments_delta(event: run_pb2.RunStepDeltaEvent) -> str | None:
    """The JSON of the commonest step delta, more argument text of one function call, written out
    directly; None for any other shape. Byte for byte what render() gives."""
    details = event.delta.step_details
    if details.WhichOneof("kind") != "tool_calls" or len(details.tool_calls.items) != 1:
        return None
    call = details.tool_calls.items[0]
    if call.HasField("id") or call.WhichOneof("kind") != "function":
        return None
    function = call.function
    if function.HasField("name") or function.HasField("output") or not function.HasField("arguments"):
        return None
    return (
        f'{{"id":{json.dumps(event.id)},"object":{json.dumps(event.object)},"delta":{{"step_details":'
        f'{{"type":"tool_calls","tool_calls":[{{"type":"function","index":{call.index},"function":'
        f'{{"arguments":{json.dumps(function.arguments)}}}}}]}}}}}}'
    )


class SharedFrames:
    """Frames of events that several streams send: the service in this process hands every
    follower of a run the very same RunEvent objects, so each is encoded once, not once per
    follower. Keyed by object identity; an entry holds its event, so no other object can take
    that id while it is kept. The last SIZE events are kept."""

    SIZE = 4096

    def __init__(self) -> None:
        self._frames: OrderedDict[int, tuple[run_pb2.RunEvent, bytes]] = OrderedDict()

    def encode(self, event: run_pb2.RunEvent) -> bytes:
        kept = self._frames.get(id(event))
        if kept is not None and kept[0] is event:
            return kept[1]
        frame = encode(event)
        self._frames[id(event)] = (event, frame)
        if len(self._frames) > self.SIZE:
            self._frames.popitem(last=False)
        return frame


SHARED_FRAMES = web.AppKey("shared_frames", SharedFrames)  # set with LOCAL_STREAMS


class Dialect(Protocol):
    """How one API's stream looks on the wire."""

    # In-process, every follower of a stream gets the very same event objects (SharedFrames).
    shares_events: bool

    def encode(self, item: Any) -> bytes:
        """The SSE frame(s) of one message of the gRPC stream."""
        ...

    def error(self, body: dict) -> bytes:
        """The frames ending a stream that failed after it began; body is the OpenAI error
        envelope {"error": {...}}."""
        ...


class Assistants:
    """The Assistants dialect: the service's own `done` event ends a stream; an error is an
    `error` event with the envelope, then `done` and [DONE] (what the SDK waits for)."""

    shares_events = True  # a run's followers in this process share its RunEvent objects

    def encode(self, item: run_pb2.RunEvent) -> bytes:
        return encode(item)

    def error(self, body: dict) -> bytes:
        return encode_error(body)


ASSISTANTS = Assistants()


async def pump(
    request: web.Request,
    channel: grpc.aio.Channel,
    path: str,
    message: Any,
    response_cls: Any,
    metadata: list[tuple[str, str]],
    dialect: Dialect,
) -> web.StreamResponse:
    """Streams the server-streaming RPC at path as SSE in the dialect. An error before anything is
    sent keeps its HTTP status; after that it goes in-band. Heartbeats cover silent stretches,
    including the wait for the first event; a client that stops reading is dropped."""
    local: Any = request.app.get(LOCAL_STREAMS)
    call = None
    encode: Callable[[Any], bytes] = dialect.encode
    if local is not None:  # the service is in this process: no loopback gRPC hop
        responses = local(path, message, metadata)
        if dialect.shares_events:
            encode = request.app[SHARED_FRAMES].encode  # each event encoded once for all its followers
    else:
        call = channel.unary_stream(
            path, request_serializer=type(message).SerializeToString, response_deserializer=response_cls.FromString
        )(message, metadata=metadata)
        responses = aiter(call)
    heartbeat = request.app[HEARTBEAT_SECONDS]
    response = _SseResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "x-request-id": request[REQUEST_ID_KEY],
        }
    )
    response.force_close()  # a stream is not reused: its connection ends with it
    request[STREAM] = response  # once prepared, the error middleware must not answer anew
    reading = asyncio.ensure_future(anext(responses))
    frames: list[bytes] = []  # encoded, not yet written: events that arrived together go in one write
    try:
        try:
            while True:
                if not reading.done():
                    if frames:  # nothing more right now: send what there is
                        await _write(request, response, b"".join(frames))
                        frames.clear()
                    if not (await asyncio.wait({reading}, timeout=heartbeat))[0]:
                        if not response.prepared:
                            await response.prepare(request)
                        await _write(request, response, HEARTBEAT)
                        continue
                try:
                    item = reading.result()  # raises the call's error, if any
                except StopAsyncIteration:
                    item = None
                if not response.prepared:
                    await response.prepare(request)
                if item is None:
                    break
                frames.append(encode(item))
                reading = asyncio.ensure_future(anext(responses))
                if len(frames) < MAX_FRAMES_PER_WRITE:
                    await asyncio.sleep(0)  # one loop turn: an event already there is read at once
        except grpc.aio.AioRpcError as error:
            if not response.prepared:
                raise  # nothing sent yet: a plain JSON error with its HTTP status
            frames.append(dialect.error(from_rpc_error(error)[1]))
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client left: there is no one to tell
        except Exception:
            if not response.prepared:
                raise
            # A second HTTP response cannot follow the first: the failure goes in-band.
            log.exception("%s %s failed after its stream began", request.method, request.path)
            frames.append(dialect.error(error_body(UNEXPLAINED, "server_error")))
        await _write(request, response, b"".join(frames), last=True)
        return response
    finally:
        # A client that left stops our reading; the run itself goes on.
        reading.cancel()
        if call is not None:
            call.cancel()
        else:
            await asyncio.gather(reading, return_exceptions=True)
            await responses.aclose()


class _SseResponse(web.StreamResponse):
    """A stream response whose headers go out with its first bytes (aiohttp's own Response does
    the same): one socket write fewer per stream."""

    _send_headers_immediately = False


async def _write(request: web.Request, response: web.StreamResponse, data: bytes, last: bool = False) -> None:
    """Writes data (last: and ends the stream, in the same socket write), dropping a client that
    has stopped reading: a write that cannot complete within the write timeout closes the connection."""
    try:
        writing = response.write_eof(data) if last else response.write(data)
        await asyncio.wait_for(writing, request.app[WRITE_TIMEOUT])
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading") from None
