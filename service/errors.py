"""Domain errors raised anywhere in the service, and THE mapping from them to gRPC statuses.

A failed call ends with a gRPC status and, in the standard `grpc-status-details-bin` trailer, a
google.rpc.Status holding one google.rpc.ErrorInfo:
- `reason`: always set, UPPER_SNAKE_CASE. OpenAI's error code upper-cased when the error has one
  (MISSING_REQUIRED_PARAMETER, INVALID_API_KEY, FILE_TOO_LARGE), else the error's own (NOT_FOUND,
  THREAD_BUSY, STORE_UNAVAILABLE);
- `domain`: ERROR_DOMAIN;
- `metadata`: `param` when one request parameter is at fault, `code` when OpenAI's error has a code.
A tenant over a limit also gets a google.rpc.RetryInfo (`retry_delay`: when to try again).
Nothing HTTP travels from here: the edge derives the HTTP status and OpenAI `type` from the gRPC
status (and, where HTTP tells apart what gRPC does not, the reason), in edge/errors.py.
"""

import re
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from service.store.errors import StoreError, StoreUnavailable

ERROR_DOMAIN = "assistd.dev"
DETAILS_KEY = "grpc-status-details-bin"


class ApiError(Exception):
    """An error the caller is told about as it is: its message, the parameter at fault (`param`,
    e.g. "messages[0].role") and OpenAI's error code (`code`, e.g. "invalid_value"), if any."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidArgument(ApiError):
    """A request that is wrong whatever the state: missing, mistyped, out-of-range or unknown values."""


class NotFound(ApiError):
    """An id that names nothing (for this tenant)."""


class FailedPrecondition(ApiError):
    """A valid request that the resource's current state refuses (e.g. cancelling a finished run)."""


class ThreadBusy(FailedPrecondition):
    """The thread has an active run, so it cannot take another run, a new message or deletion."""


class Unauthenticated(ApiError):
    """No API key, or one that names no tenant."""


class FileTooLarge(ApiError):
    """An upload over the configured size limit."""


class RateLimitExceeded(ApiError):
    """A tenant over one of its limits (service/limits.py): to be tried again in `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0):
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after


class Internal(ApiError):
    """A failure of ours, with a message fit for the caller."""


# THE table: domain error -> (gRPC status, ErrorInfo reason when the error has no OpenAI code).
# Looked up along the error's MRO, so a subclass that is not listed maps as its base does.
ERROR_MAP: dict[type[BaseException], tuple[grpc.StatusCode, str]] = {
    InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    NotFound: (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    ThreadBusy: (grpc.StatusCode.FAILED_PRECONDITION, "THREAD_BUSY"),
    FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
    Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    # OUT_OF_RANGE: the upload ran past the allowed size (the edge answers 413 for its reason).
    FileTooLarge: (grpc.StatusCode.OUT_OF_RANGE, "FILE_TOO_LARGE"),
    # Reason RATE_LIMIT_EXCEEDED (from its code), with a google.rpc.RetryInfo: the edge answers 429.
    RateLimitExceeded: (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMIT_EXCEEDED"),
    Internal: (grpc.StatusCode.INTERNAL, "INTERNAL"),
    StoreUnavailable: (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"),
    StoreError: (grpc.StatusCode.INTERNAL, "STORE_ERROR"),
}
# Anything else is a bug of ours.
UNEXPECTED = (grpc.StatusCode.INTERNAL, "INTERNAL")

# What the caller reads when the cause is ours, not theirs; the details stay in our logs.
_UNEXPLAINED = {
    grpc.StatusCode.INTERNAL: "The server had an error while processing your request.",
    grpc.StatusCode.UNAVAILABLE: "The service is temporarily unavailable. Please retry your request.",
}


@dataclass(frozen=True)
class RpcError:
    """How a failed call ends over gRPC."""

    status: grpc.StatusCode
    message: str
    info: error_details_pb2.ErrorInfo
    retry: error_details_pb2.RetryInfo | None = None

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        details = []
        for part in (self.info, self.retry):
            if part is not None:
                details.append(any_pb2.Any())
                details[-1].Pack(part)
        status = status_pb2.Status(code=self.status.value[0], message=self.message, details=details)
        return ((DETAILS_KEY, status.SerializeToString()),)


# Longest message and param a status carries: both travel in gRPC metadata (16 KiB in all), and a
# message that quotes a caller's huge value must not make the error itself fail.
MAX_MESSAGE = 2048
MAX_PARAM = 256


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mapping(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_MAP:
            return ERROR_MAP[cls]
    return UNEXPECTED


def reason_of(code: str) -> str:
    """An OpenAI error code as an ErrorInfo reason: "missing_required_parameter" -> "MISSING_REQUIRED_PARAMETER"."""
    return re.sub(r"[^A-Z0-9]+", "_", code.upper()).strip("_")


def to_rpc_error(exc: BaseException) -> RpcError:
    """THE translation of any exception a servicer lets out into a gRPC status with ErrorInfo."""
    status, reason = _mapping(exc)
    info = error_details_pb2.ErrorInfo(domain=ERROR_DOMAIN)
    if isinstance(exc, ApiError):
        message = clip(exc.message, MAX_MESSAGE)
        if exc.code:
            reason = reason_of(exc.code)
            info.metadata["code"] = exc.code
        if exc.param is not None:
            info.metadata["param"] = clip(exc.param, MAX_PARAM)
    else:  # a store failure or a bug: its text may hold internals
        message = _UNEXPLAINED[status]
    info.reason = reason
    retry = None
    if isinstance(exc, RateLimitExceeded):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(0, int(exc.retry_after * 1e9)))
    return RpcError(status, message, info, retry)


def not_found(kind: str, object_id: str) -> NotFound:
    return NotFound(f"No {kind} found with id '{object_id}'.")


def missing(param: str) -> InvalidArgument:
    return InvalidArgument(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
