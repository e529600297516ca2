"""THE mapping from a failed gRPC call to an HTTP status and OpenAI error body.

The service says what went wrong in gRPC terms only: a status code and a google.rpc.ErrorInfo
(reason, and `param`/`code` metadata). Which HTTP status and OpenAI `type` that is gets decided
here, from the status code, and from the reason where HTTP tells apart what one gRPC code covers.
"""

import math

import grpc
from aiohttp import web
from google.rpc import error_details_pb2, status_pb2

from service.errors import ERROR_DOMAIN, MAX_MESSAGE, MAX_PARAM, clip

_DETAILS_KEY = "grpc-status-details-bin"

# gRPC code -> (HTTP status, OpenAI error type), after google/rpc/code.proto's HTTP mapping, with
# OpenAI's choices where they differ: FAILED_PRECONDITION is 400 (OpenAI answers state conflicts,
# e.g. a busy thread, with 400), and 401/404 bodies say invalid_request_error, as OpenAI's do.
STATUS_MAP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.CANCELLED: (499, "server_error"),
    grpc.StatusCode.UNKNOWN: (500, "server_error"),
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "server_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    # From gRPC itself RESOURCE_EXHAUSTED means a message over its size limit, a fault of ours, not
    # a rate limit: a tenant over its limits comes with the reason RATE_LIMIT_EXCEEDED (below).
    grpc.StatusCode.RESOURCE_EXHAUSTED: (500, "server_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.ABORTED: (409, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "server_error"),
    grpc.StatusCode.INTERNAL: (500, "server_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
    grpc.StatusCode.DATA_LOSS: (500, "server_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "invalid_request_error"),
}
_DEFAULT = (500, "server_error")
UNEXPLAINED = "The server had an error while processing your request."

# ErrorInfo reasons that HTTP answers differently from the rest of their gRPC code.
REASON_OVERRIDES: dict[str, tuple[int, str]] = {
    "FILE_TOO_LARGE": (413, "invalid_request_error"),  # OUT_OF_RANGE otherwise means 400
    # RESOURCE_EXHAUSTED from the service's tenant limits: OpenAI's 429 for request limits says
    # type "requests", code "rate_limit_exceeded"; the SDK raises RateLimitError for any 429.
    "RATE_LIMIT_EXCEEDED": (429, "requests"),
}


def http_status(code: grpc.StatusCode, reason: str | None = None) -> tuple[int, str]:
    """(HTTP status, OpenAI error type) of a gRPC status code and ErrorInfo reason."""
    if reason in REASON_OVERRIDES:
        return REASON_OVERRIDES[reason]
    return STATUS_MAP.get(code, _DEFAULT)


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict:
    if param is not None:
        param = clip(param, MAX_PARAM)
    return {"error": {"message": clip(message, MAX_MESSAGE), "type": error_type, "param": param, "code": code}}


def error_headers(status: int, retry_after: int | None = None) -> dict[str, str] | None:
    """Client errors are final: the SDK is told not to retry them (it retries 409 and 5xx by
    default), except a 429, which it retries after `retry-after` seconds."""
    if status == 429:
        return {"retry-after": str(retry_after)} if retry_after is not None else None
    return {"x-should-retry": "false"} if status < 500 else None


def error_response(status: int, message: str, error_type: str = "invalid_request_error", param=None, code=None):
    return web.json_response(error_body(message, error_type, param, code), status=status, headers=error_headers(status))


def _detail(trailing_metadata, kind):
    """The detail of this type in a call's `grpc-status-details-bin` trailer, if there is one."""
    for key, value in trailing_metadata or ():
        if key != _DETAILS_KEY:
            continue
        for detail in status_pb2.Status.FromString(value).details:
            found = kind()
            if detail.Is(found.DESCRIPTOR) and detail.Unpack(found):
                return found
    return None


def error_info(trailing_metadata) -> error_details_pb2.ErrorInfo | None:
    return _detail(trailing_metadata, error_details_pb2.ErrorInfo)


def retry_after(error: grpc.aio.AioRpcError) -> int | None:
    """Whole seconds to wait, from the call's google.rpc.RetryInfo (rounded up: `retry-after`
    takes integers, and a client told 0 would come back at once)."""
    retry = _detail(error.trailing_metadata(), error_details_pb2.RetryInfo)
    if retry is None:
        return None
    return max(1, math.ceil(retry.retry_delay.ToNanoseconds() / 1e9))


def from_rpc_error(error: grpc.aio.AioRpcError) -> tuple[int, dict]:
    """HTTP status and OpenAI error body for a failed call."""
    info = error_info(error.trailing_metadata())
    if info is not None and info.domain != ERROR_DOMAIN:
        info = None
    status, error_type = http_status(error.code(), info.reason if info else None)
    param = info.metadata.get("param") if info else None
    code = info.metadata.get("code") if info else None
    if info is None and status >= 500:  # from gRPC itself, not our service: its text is internals
        return status, error_body(UNEXPLAINED, error_type)
    return status, error_body(error.details() or error.code().name, error_type, param, code)
