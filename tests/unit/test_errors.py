"""The service's one table: domain errors -> gRPC status + google.rpc.ErrorInfo (service/errors.py)."""

import re

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from service import errors
from service.errors import (
    ERROR_DOMAIN,
    ERROR_MAP,
    ApiError,
    FailedPrecondition,
    FileTooLarge,
    Internal,
    InvalidArgument,
    NotFound,
    RateLimitExceeded,
    ThreadBusy,
    Unauthenticated,
    missing,
    not_found,
    to_rpc_error,
)
from service.store.errors import StoreError, StoreUnavailable

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")

# Every error class the service raises, with the status it must end in.
EXPECTED = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ThreadBusy: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    FileTooLarge: grpc.StatusCode.OUT_OF_RANGE,
    RateLimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Internal: grpc.StatusCode.INTERNAL,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreError: grpc.StatusCode.INTERNAL,
}


def _api_error_classes() -> set[type]:
    found, todo = set(), [ApiError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == errors.__name__:
                found.add(sub)
                todo.append(sub)
    return found


def test_the_table_covers_every_error_class():
    assert _api_error_classes() | {StoreError, StoreUnavailable} == set(EXPECTED) == set(ERROR_MAP)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda cls: cls.__name__)
def test_each_error_class_maps_to_its_status_with_an_upper_snake_reason(cls):
    exc = cls("something went wrong")
    error = to_rpc_error(exc)
    assert error.status == EXPECTED[cls]
    assert UPPER_SNAKE.match(error.info.reason), error.info.reason
    assert error.info.domain == ERROR_DOMAIN == "assistd.dev"
    # nothing HTTP travels from the service
    assert set(error.info.metadata) <= {"param", "code"}


def test_reasons_name_the_cause():
    assert to_rpc_error(not_found("run", "run_x")).info.reason == "NOT_FOUND"
    assert to_rpc_error(ThreadBusy("busy")).info.reason == "THREAD_BUSY"
    assert to_rpc_error(FailedPrecondition("no")).info.reason == "FAILED_PRECONDITION"
    assert to_rpc_error(StoreUnavailable("down")).info.reason == "STORE_UNAVAILABLE"
    assert to_rpc_error(StoreError("broken")).info.reason == "STORE_ERROR"
    assert to_rpc_error(InvalidArgument("bad", param="x")).info.reason == "INVALID_ARGUMENT"


def test_an_openai_code_becomes_the_reason_and_travels_as_metadata_with_param():
    info = to_rpc_error(missing("messages[0].role")).info
    assert info.reason == "MISSING_REQUIRED_PARAMETER"
    assert dict(info.metadata) == {"param": "messages[0].role", "code": "missing_required_parameter"}
    info = to_rpc_error(Unauthenticated("Incorrect API key provided.", code="invalid_api_key")).info
    assert info.reason == "INVALID_API_KEY" and dict(info.metadata) == {"code": "invalid_api_key"}
    info = to_rpc_error(FileTooLarge("too big", param="file", code="file_too_large")).info
    assert info.reason == "FILE_TOO_LARGE" and info.metadata["param"] == "file"


def test_no_code_no_param_means_no_metadata():
    # OpenAI's 404 has `code: null` and `param: null`: nothing to carry.
    error = to_rpc_error(not_found("assistant", "asst_x"))
    assert error.message == "No assistant found with id 'asst_x'." and dict(error.info.metadata) == {}


def test_failures_of_ours_hide_their_text():
    for exc, status in [
        (KeyError("secret internals"), grpc.StatusCode.INTERNAL),
        (StoreError("sqlite: no such table objects"), grpc.StatusCode.INTERNAL),
        (StoreUnavailable("NoHostAvailable 10.0.0.7"), grpc.StatusCode.UNAVAILABLE),
    ]:
        error = to_rpc_error(exc)
        assert error.status == status and error.info.reason and error.info.domain == ERROR_DOMAIN
        assert str(exc.args[0]) not in error.message and "10.0.0.7" not in error.message
        assert dict(error.info.metadata) == {}


def test_a_subclass_not_in_the_table_maps_as_its_base():
    class Nope(NotFound):
        pass

    assert to_rpc_error(Nope("x")).status == grpc.StatusCode.NOT_FOUND


def test_the_trailer_is_a_google_rpc_status_holding_the_error_info():
    error = to_rpc_error(missing("model"))
    ((key, value),) = error.trailing_metadata()
    assert key == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and status.message == error.message
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info == error.info


def test_the_signatures_other_modules_use_stay():
    exc = InvalidArgument("m", param="p", code="c")
    assert (exc.message, exc.param, exc.code) == ("m", "p", "c")
    assert FailedPrecondition("busy").message == "busy"
    assert missing("x").param == "x" and missing("x").code == "missing_required_parameter"
    assert isinstance(not_found("run", "r"), NotFound)


def test_a_tenant_over_its_limit_gets_rate_limit_exceeded_and_when_to_retry():
    error = to_rpc_error(RateLimitExceeded("Rate limit reached for requests.", retry_after=2.5))
    assert error.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.info.reason == "RATE_LIMIT_EXCEEDED" and error.info.metadata["code"] == "rate_limit_exceeded"
    ((_, raw),) = error.trailing_metadata()
    details = status_pb2.Status.FromString(raw).details
    retry = error_details_pb2.RetryInfo()
    assert [d.Is(retry.DESCRIPTOR) for d in details] == [False, True] and details[1].Unpack(retry)
    assert retry.retry_delay.ToNanoseconds() == 2_500_000_000
    assert to_rpc_error(NotFound("x")).retry is None  # other errors carry no RetryInfo
