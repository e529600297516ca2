"""An error after an SSE stream began is told in-band (`error`, then `done`), never as a second
HTTP response inside the chunked body. The edge runs on a real socket; its run stream comes from
a stand-in for the service's in-process streams that fails after its first event."""

import asyncio
import json
import socket

import openai
from aiohttp import web
from assistd.v1 import message_pb2, response_pb2, run_pb2
from openai.types.responses import ResponseCreatedEvent, ResponseErrorEvent

from edge.app import create_app
from service.responses.typed import response_from_json


def _stream_that_fails(error: Exception):
    def streams(path, request, metadata):
        async def events():
            yield run_pb2.RunEvent(
                event=run_pb2.RUN_EVENT_TYPE_THREAD_RUN_CREATED, sequence_number=1, run=run_pb2.Run(id="run_1")
            )
            await asyncio.sleep(0.05)  # the first frame is on the wire before the failure
            raise error

        return events()

    return streams


async def _raw_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()  # until the server closes: the whole response, chunked framing and all
    writer.close()
    return raw


async def _raw_post(port: int, path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    return raw


async def _start(streams, **options) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(create_app("127.0.0.1:1", heartbeat_seconds=30, local_streams=streams, **options))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _serve_and_get(error: Exception) -> bytes:
    runner, port = await _start(_stream_that_fails(error))
    try:
        return await _raw_get(port, "/v1/threads/thread_1/runs/run_1/events")
    finally:
        await runner.cleanup()


def test_an_unexpected_error_mid_stream_is_an_error_event_then_done():
    raw = asyncio.run(_serve_and_get(RuntimeError("secret internals")))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert raw.count(b"HTTP/1.1") == 1  # no second response inside the body
    assert b"event: thread.run.created" in body
    assert body.index(b"event: error") < body.index(b"event: done\ndata: [DONE]")
    assert b"server_error" in body and b"secret internals" not in body
    assert body.endswith(b"0\r\n\r\n")  # the chunked body is ended properly


def test_a_client_that_stopped_reading_is_dropped_and_its_stream_closed():
    """Megabytes of deltas to a client whose socket takes nothing: the edge gives up after the
    write timeout, closes the connection and stops following the run."""

    async def scenario():
        closed = asyncio.Event()

        def streams(path, request, metadata):
            async def events():
                try:
                    text = "x" * 65536
                    for sequence in range(1, 1_000_000):
                        delta = message_pb2.MessageDeltaEvent(id="msg_1", object="thread.message.delta")
                        delta.delta.content.add(index=0, text=message_pb2.TextDelta(value=text))
                        yield run_pb2.RunEvent(
                            event=run_pb2.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA,
                            sequence_number=sequence,
                            message_delta=delta,
                        )
                        await asyncio.sleep(0)
                finally:
                    closed.set()

            return events()

        runner, port = await _start(streams, write_timeout=0.5)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
        client.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
            client.send(b"GET /v1/threads/thread_1/runs/run_1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(closed.wait(), 120)  # a bound for a hung test, not a timing claim
        finally:
            client.close()
            await runner.cleanup()

    asyncio.run(scenario())


# The Responses dialect goes through the same pump: the same two guarantees, its own wire shape
# (an `error` event, the spec's ResponseErrorEvent, and no [DONE]).


def _response_event(sequence: int, data: dict) -> response_pb2.CreateResponseStreamResponse:
    event = response_pb2.ResponseEvent(sequence_number=sequence, type=data["type"])
    event.lifecycle.response.CopyFrom(response_from_json(data["response"]))
    return response_pb2.CreateResponseStreamResponse(event=event)


_CREATED = {
    "type": "response.created",
    "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": [], "model": "m"},
}


def test_responses_an_unexpected_error_mid_stream_is_an_error_event_the_sdk_parses():
    async def scenario():
        def streams(path, request, metadata):
            async def events():
                yield _response_event(0, _CREATED)
                await asyncio.sleep(0.05)  # the first frame is on the wire before the failure
                raise RuntimeError("secret internals")

            return events()

        runner, port = await _start(streams)
        try:
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
            stream = await client.responses.create(model="m", input="hi", stream=True)
            events = [event async for event in stream]
            raw = await _raw_post(port, "/v1/responses", {"model": "m", "input": "hi", "stream": True})
            return events, raw
        finally:
            await runner.cleanup()

    events, raw = asyncio.run(scenario())
    assert [type(event) for event in events] == [ResponseCreatedEvent, ResponseErrorEvent]
    error = events[1]
    assert error.code == "server_error" and error.sequence_number == 1
    assert "secret internals" not in error.message
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1") == 1  # no second response
    assert b"[DONE]" not in body and b"event: done" not in body  # the Responses stream has no terminator event
    assert body.endswith(b"0\r\n\r\n")  # the chunked body is ended properly


def test_responses_a_client_that_stopped_reading_is_dropped_and_its_stream_closed():
    async def scenario():
        closed = asyncio.Event()

        def streams(path, request, metadata):
            async def events():
                try:
                    yield _response_event(0, _CREATED)
                    text = "x" * 65536
                    for sequence in range(1, 1_000_000):
                        yield _response_event(
                            sequence,
                            {
                                "type": "response.output_text.delta",
                                "item_id": "msg_1",
                                "output_index": 0,
                                "content_index": 0,
                                "delta": text,
                                "logprobs": [],
                            },
                        )
                        await asyncio.sleep(0)
                finally:
                    closed.set()

            return events()

        runner, port = await _start(streams, write_timeout=0.5)
        body = b'{"model":"m","input":"hi","stream":true}'
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
        client.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
            client.send(
                b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(closed.wait(), 120)  # a bound for a hung test, not a timing claim
        finally:
            client.close()
            await runner.cleanup()

    asyncio.run(scenario())
