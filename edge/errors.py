"""THE mapping from gRPC status to HTTP status and OpenAI error type, and the error body."""

import grpc
from aiohttp import web
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"

# gRPC code -> (HTTP status, OpenAI error type), after google/rpc/code.proto; FAILED_PRECONDITION
# is 400 because OpenAI answers state conflicts (e.g. a busy thread) with 400.
STATUS_MAP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "invalid_request_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.ABORTED: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "server_error"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "server_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "server_error"),
}
_DEFAULT = (500, "server_error")


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(status: int, message: str, error_type: str = "invalid_request_error", param=None, code=None):
    # Client errors are final: tell the SDK not to retry them (it retries 409 and 5xx by default).
    headers = {"x-should-retry": "false"} if status < 500 else None
    return web.json_response(error_body(message, error_type, param, code), status=status, headers=headers)


def from_rpc_error(error: grpc.aio.AioRpcError) -> tuple[int, dict]:
    """HTTP status and OpenAI error body for a failed call, using the service's ErrorInfo."""
    status, error_type = STATUS_MAP.get(error.code(), _DEFAULT)
    param = code = None
    message = error.details() or error.code().name
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY:
            continue
        for detail in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                error_type = info.metadata.get("type", error_type)
                param = info.metadata.get("param")
                code = info.reason or None
                status = int(info.metadata.get("http_status", status))
    if error.code() == grpc.StatusCode.UNAUTHENTICATED and code is None:
        code = "invalid_api_key"
    return status, error_body(message, error_type, param, code)
