"""Server-streaming calls made inside this process, for the edge of `assistd serve`.

When the edge and the service share a process, the edge follows a run's events through the same
servicer methods a gRPC client reaches, minus the loopback hop (a serialise, a send, a receive
and a parse per event). Authentication, validation and errors behave exactly as over gRPC: the
servicer aborts with the same status and ErrorInfo, raised here as the same AioRpcError.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message


class InProcessContext:
    """The part of grpc.aio.ServicerContext the servicers use, for a call made in this process."""

    def __init__(self, metadata: Sequence[tuple[str, str]]):
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence = ()) -> None:
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing_metadata), details)


class LocalStreams:
    """Calls a server-streaming method by its gRPC path (`/assistd.v1.RunService/CreateRunStream`)."""

    def __init__(self, servicers: dict[str, Any]):
        self._servicers = servicers  # full service name -> servicer

    def __call__(self, path: str, request: Message, metadata: Sequence[tuple[str, str]]) -> AsyncIterator[Message]:
        service, _, method = path.strip("/").partition("/")
        return getattr(self._servicers[service], method)(request, InProcessContext(metadata))
