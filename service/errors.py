"""Domain errors raised anywhere in the service, and how they travel over gRPC.

Each error carries the OpenAI envelope fields (`type`, `param`, `code`). They travel in
the standard `grpc-status-details-bin` trailer as a google.rpc.Status with one
google.rpc.ErrorInfo (reason = OpenAI code, metadata = type/param), so any gRPC client can
read them and the edge can rebuild the OpenAI error body.
"""

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "assistd"
DETAILS_KEY = "grpc-status-details-bin"


class ApiError(Exception):
    grpc_code = grpc.StatusCode.INTERNAL
    error_type = "server_error"
    # An HTTP status the edge should use instead of the one it maps grpc_code to (e.g. 413).
    http_status: int | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        info = error_details_pb2.ErrorInfo(reason=self.code or "", domain=ERROR_DOMAIN)
        info.metadata["type"] = self.error_type
        if self.param is not None:
            info.metadata["param"] = self.param
        if self.http_status is not None:
            info.metadata["http_status"] = str(self.http_status)
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=self.grpc_code.value[0], message=self.message, details=[detail])
        return ((DETAILS_KEY, status.SerializeToString()),)


class InvalidArgument(ApiError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    error_type = "invalid_request_error"


class NotFound(ApiError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    error_type = "invalid_request_error"


class FailedPrecondition(ApiError):
    """A valid request that the resource's state refuses (e.g. a busy thread): HTTP 400."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    error_type = "invalid_request_error"


class Unauthenticated(ApiError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    error_type = "invalid_request_error"


class TooLarge(ApiError):
    """A payload over a configured size limit: HTTP 413."""

    grpc_code = grpc.StatusCode.OUT_OF_RANGE
    error_type = "invalid_request_error"
    http_status = 413


class Internal(ApiError):
    grpc_code = grpc.StatusCode.INTERNAL
    error_type = "server_error"


def not_found(kind: str, object_id: str) -> NotFound:
    return NotFound(f"No {kind} found with id '{object_id}'.")


def missing(param: str) -> InvalidArgument:
    return InvalidArgument(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
