"""The edge's one table: gRPC status (+ ErrorInfo reason) -> HTTP status and OpenAI type (edge/errors.py)."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from edge.errors import REASON_OVERRIDES, STATUS_MAP, error_headers, from_rpc_error, http_status, retry_after

C = grpc.StatusCode
# google/rpc/code.proto's HTTP mapping, with OpenAI's 400 for FAILED_PRECONDITION.
EXPECTED = {
    C.CANCELLED: (499, "server_error"),
    C.UNKNOWN: (500, "server_error"),
    C.INVALID_ARGUMENT: (400, "invalid_request_error"),
    C.DEADLINE_EXCEEDED: (504, "server_error"),
    C.NOT_FOUND: (404, "invalid_request_error"),
    C.ALREADY_EXISTS: (409, "invalid_request_error"),
    C.PERMISSION_DENIED: (403, "permission_error"),
    C.RESOURCE_EXHAUSTED: (500, "server_error"),  # gRPC's own message-size limit: not a rate limit
    C.FAILED_PRECONDITION: (400, "invalid_request_error"),
    C.ABORTED: (409, "invalid_request_error"),
    C.OUT_OF_RANGE: (400, "invalid_request_error"),
    C.UNIMPLEMENTED: (501, "server_error"),
    C.INTERNAL: (500, "server_error"),
    C.UNAVAILABLE: (503, "server_error"),
    C.DATA_LOSS: (500, "server_error"),
    C.UNAUTHENTICATED: (401, "invalid_request_error"),
}


def test_every_error_status_code_is_in_the_table():
    assert set(STATUS_MAP) == set(C) - {C.OK} == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED, key=lambda c: c.value[0]), ids=lambda c: c.name)
def test_each_status_code_maps_to_its_http_status_and_type(code):
    assert http_status(code) == EXPECTED[code]
    assert http_status(code, "SOME_OTHER_REASON") == EXPECTED[code]  # only listed reasons override


def test_a_file_too_large_is_413_whatever_the_code():
    assert REASON_OVERRIDES == {
        "FILE_TOO_LARGE": (413, "invalid_request_error"),
        "RATE_LIMIT_EXCEEDED": (429, "requests"),
    }
    assert http_status(C.OUT_OF_RANGE, "FILE_TOO_LARGE") == (413, "invalid_request_error")


def _call_error(code, message, info=None, retry=None) -> grpc.aio.AioRpcError:
    """A failed call as the edge's channel raises it, with the service's ErrorInfo (and RetryInfo) trailer."""
    trailers = grpc.aio.Metadata()
    if info is not None:
        details = [any_pb2.Any() for _ in (info, retry) if _ is not None]
        for detail, part in zip(details, [p for p in (info, retry) if p is not None], strict=True):
            detail.Pack(part)
        status = status_pb2.Status(code=code.value[0], message=message, details=details)
        trailers.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=message)


def test_the_body_takes_param_and_code_from_the_error_info():
    info = error_details_pb2.ErrorInfo(reason="INVALID_VALUE", domain="assistd.dev")
    info.metadata.update({"param": "response_format.type", "code": "invalid_value"})
    status, body = from_rpc_error(_call_error(C.INVALID_ARGUMENT, "Invalid value: 'yaml'.", info))
    assert status == 400
    assert body == {
        "error": {
            "message": "Invalid value: 'yaml'.",
            "type": "invalid_request_error",
            "param": "response_format.type",
            "code": "invalid_value",
        }
    }


def test_without_code_or_param_they_are_null_as_in_openai_404s():
    info = error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="assistd.dev")
    status, body = from_rpc_error(_call_error(C.NOT_FOUND, "No run found with id 'run_x'.", info))
    assert status == 404 and body["error"]["param"] is None and body["error"]["code"] is None


def test_an_unauthenticated_call_and_an_oversized_upload_look_as_the_sdk_expects():
    info = error_details_pb2.ErrorInfo(reason="INVALID_API_KEY", domain="assistd.dev")
    info.metadata["code"] = "invalid_api_key"
    status, body = from_rpc_error(_call_error(C.UNAUTHENTICATED, "Incorrect API key provided.", info))
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    info = error_details_pb2.ErrorInfo(reason="FILE_TOO_LARGE", domain="assistd.dev")
    info.metadata.update({"param": "file", "code": "file_too_large"})
    status, body = from_rpc_error(_call_error(C.OUT_OF_RANGE, "File is too large.", info))
    assert status == 413 and body["error"]["code"] == "file_too_large"


def test_a_call_with_no_error_info_maps_by_its_code_alone():
    status, body = from_rpc_error(_call_error(C.UNAVAILABLE, "failed to connect to all addresses"))
    assert status == 503 and body["error"]["type"] == "server_error" and body["error"]["param"] is None


def test_a_message_over_the_grpc_size_limit_is_a_500_not_a_rate_limit_and_leaks_nothing():
    error = _call_error(C.RESOURCE_EXHAUSTED, "Received message larger than max (73400788 vs. 67108864)")
    status, body = from_rpc_error(error)
    assert status == 500 and body["error"]["type"] == "server_error"
    assert "73400788" not in body["error"]["message"]


def test_an_internal_error_from_grpc_itself_never_shows_its_text():
    detail = "Unexpected <class 'google.protobuf.message.DecodeError'>: Exceeded upb_DecodeOptions_MaxDepth"
    for code in (C.UNKNOWN, C.INTERNAL):
        status, body = from_rpc_error(_call_error(code, detail))
        assert status == 500 and "upb" not in body["error"]["message"]
    foreign = error_details_pb2.ErrorInfo(reason="X", domain="example.com")  # not our service's ErrorInfo
    status, body = from_rpc_error(_call_error(C.INTERNAL, detail, foreign))
    assert "upb" not in body["error"]["message"]


def test_a_huge_message_or_param_is_cut_short():
    info = error_details_pb2.ErrorInfo(reason="INVALID_VALUE", domain="assistd.dev")
    info.metadata["param"] = "p" * 100_000
    _, body = from_rpc_error(_call_error(C.INVALID_ARGUMENT, "m" * 100_000, info))
    assert len(body["error"]["message"]) <= 2048 and len(body["error"]["param"]) <= 256


def test_a_tenant_over_its_limit_is_a_429_with_retry_after_in_whole_seconds():
    info = error_details_pb2.ErrorInfo(reason="RATE_LIMIT_EXCEEDED", domain="assistd.dev")
    info.metadata["code"] = "rate_limit_exceeded"
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromNanoseconds(1_200_000_000)
    error = _call_error(C.RESOURCE_EXHAUSTED, "Rate limit reached for requests.", info, retry)
    status, body = from_rpc_error(error)
    assert status == 429 and body["error"]["type"] == "requests" and body["error"]["code"] == "rate_limit_exceeded"
    assert retry_after(error) == 2  # rounded up
    assert error_headers(429, 2) == {"retry-after": "2"}  # and no x-should-retry: false, the SDK may retry it
    assert error_headers(400) == {"x-should-retry": "false"} and error_headers(503) is None
