"""The two container file routes that are not plain JSON: adding a file (a multipart upload, or
JSON `{"file_id": ...}`) and downloading a file's bytes."""

import grpc
from aiohttp import BodyPartReader, web
from assistd.v1 import container_pb2, container_pb2_grpc

from edge import codec, files

C = container_pb2


async def create_file(request: web.Request, channel: grpc.aio.Channel, metadata, body: dict | None) -> dict:
    """POST /v1/containers/{container_id}/files: multipart with `file`, or JSON with `file_id`."""
    container_id = request.match_info["container_id"]
    call = container_pb2_grpc.ContainerServiceStub(channel).CreateContainerFile(metadata=metadata)
    try:
        if body is not None:
            for key in body:
                if key != "file_id":
                    raise codec.CodecError(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
            file_id = body.get("file_id")
            if not isinstance(file_id, str) or not file_id:
                raise codec.CodecError(
                    "Missing required parameter: 'file_id'.", "file_id", "missing_required_parameter"
                )
            await call.write(C.CreateContainerFileRequest(container_id=container_id, file_id=file_id))
        else:
            await _upload(request, call, container_id)
        await call.done_writing()
        response = await call
    except BaseException:
        call.cancel()
        raise
    return codec.render(response.file)


async def _upload(request: web.Request, call, container_id: str) -> None:
    try:
        reader = await request.multipart()
    except files.MALFORMED as error:
        raise files.malformed() from error
    sent = False
    while (part := await files.next_part(reader)) is not None:
        if not isinstance(part, BodyPartReader):
            raise codec.CodecError("Nested multipart bodies are not supported.", None, "invalid_request")
        if part.name != "file":
            raise codec.CodecError(f"Unknown parameter: '{part.name}'.", part.name, "unknown_parameter")
        first = C.CreateContainerFileRequest(container_id=container_id, filename=part.filename or "file")
        await files.send(call, first)
        sent = True
        while chunk := await files.read(part.read_chunk(files.CHUNK)):
            await files.send(call, C.CreateContainerFileRequest(chunk=chunk))
    if not sent:
        raise codec.CodecError("Missing required parameter: 'file'.", "file", "missing_required_parameter")


async def file_content(request: web.Request, channel: grpc.aio.Channel, metadata) -> web.StreamResponse:
    """GET /v1/containers/{container_id}/files/{file_id}/content: the file's bytes."""
    message = C.GetContainerFileContentRequest(
        container_id=request.match_info["container_id"], file_id=request.match_info["file_id"]
    )
    call = container_pb2_grpc.ContainerServiceStub(channel).GetContainerFileContent(message, metadata=metadata)
    return await files.stream_content(request, call)
