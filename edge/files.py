"""The two file routes that are not JSON: multipart upload and raw content download (their
helpers serve the container file routes too, edge/containers.py).

Upload bytes stream from the HTTP body into the gRPC client stream chunk by chunk, so neither
process holds a whole file in memory."""

from collections.abc import Awaitable
from typing import TypeVar, cast

import grpc
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from assistd.v1 import file_pb2, file_pb2_grpc
from google.protobuf.message import Message

from edge import codec
from service.validation import quoted

CHUNK = 1024 * 1024
T = TypeVar("T")
# What aiohttp's multipart reader raises for a truncated or malformed body (bad part headers too).
MALFORMED = (ValueError, AssertionError, HttpProcessingError)
_ANCHORS = ("created_at",)


async def send(call, message: Message) -> None:
    try:
        await call.write(message)
    except Exception:
        await call  # the service has ended the call (e.g. too large): raise its status instead
        raise


def malformed() -> codec.CodecError:
    return codec.CodecError("The multipart/form-data body is malformed or incomplete.", "file", "invalid_request")


async def read(reading: Awaitable[T]) -> T:
    """A read from the multipart body; a truncated or malformed body is the caller's 400."""
    try:
        return await reading
    except MALFORMED as error:
        raise malformed() from error


async def next_part(reader: MultipartReader):
    return await read(reader.next())


async def upload_file(request: web.Request, channel: grpc.aio.Channel, metadata) -> dict:
    """POST /v1/files: fields `purpose`, `file`, optional `expires_after[anchor|seconds]`."""
    if not request.content_type.startswith("multipart/"):
        raise codec.CodecError(
            "Expected a multipart/form-data body with 'file' and 'purpose'.", "file", "invalid_request"
        )
    try:
        reader = await request.multipart()
    except MALFORMED as error:
        raise malformed() from error
    call = file_pb2_grpc.FileServiceStub(channel).UploadFile(metadata=metadata)
    try:
        while (part := await next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                raise codec.CodecError("Nested multipart bodies are not supported.", None, "invalid_request")
            if part.name == "file":
                await send(call, file_pb2.UploadFileRequest(filename=part.filename or "file"))
                while chunk := await read(part.read_chunk(CHUNK)):
                    await send(call, file_pb2.UploadFileRequest(chunk=chunk))
            elif part.name == "purpose":
                purpose = cast(
                    file_pb2.FilePurpose,
                    codec.enum_from_json(file_pb2.FilePurpose.DESCRIPTOR, await read(part.text()), "purpose"),
                )
                await send(call, file_pb2.UploadFileRequest(purpose=purpose))
            elif part.name == "expires_after[seconds]":
                value = await read(part.text())
                if not (value.isascii() and value.isdigit() and len(value) <= 10):
                    raise codec.CodecError(
                        f"Invalid type for 'expires_after[seconds]': expected an integer, but got {quoted(value)}.",
                        "expires_after[seconds]",
                    )
                await send(call, file_pb2.UploadFileRequest(expires_after_seconds=int(value)))
            elif part.name == "expires_after[anchor]":
                if (anchor := await read(part.text())) not in _ANCHORS:
                    raise codec.CodecError(
                        f"Invalid value: '{anchor}'. Supported values are: 'created_at'.",
                        "expires_after[anchor]",
                        "invalid_value",
                    )
            else:
                raise codec.CodecError(f"Unknown parameter: '{part.name}'.", part.name, "unknown_parameter")
        await call.done_writing()
        response = await call
    except BaseException:
        call.cancel()  # the service drops what it has written
        raise
    return codec.render(response.file)


async def file_content(request: web.Request, channel: grpc.aio.Channel, metadata) -> web.StreamResponse:
    """GET /v1/files/{file_id}/content: the bytes as they were uploaded."""
    call = file_pb2_grpc.FileServiceStub(channel).GetFileContent(
        file_pb2.GetFileContentRequest(file_id=request.match_info["file_id"]), metadata=metadata
    )
    return await stream_content(request, call)


async def stream_content(request: web.Request, call) -> web.StreamResponse:
    """A content RPC's chunks as the HTTP body."""
    try:
        first = await call.read()  # errors (404) arrive before any byte is sent
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        item = first
        while item is not grpc.aio.EOF:
            await response.write(item.chunk)
            item = await call.read()
        await response.write_eof()
        return response
    finally:
        call.cancel()
