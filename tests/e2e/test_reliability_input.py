"""Bad input never poisons a tenant: every case is a 400 naming its parameter, nothing is stored,
and the tenant's lists still answer 200 afterwards.

HTTP bodies the openai SDK would not send (Infinity, lone surrogates, invalid UTF-8, deep nesting,
truncated multipart) go raw through httpx; gRPC cases through the generated stubs. Each case ends
with the same check: the assistants, files and thread lists of the tenant answer 200.
"""

import json
import uuid

import grpc
import httpx
import pytest
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    file_pb2,
    message_pb2,
    message_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)
from google.protobuf import struct_pb2

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]
HEADERS = {"Authorization": "Bearer test-key", "OpenAI-Beta": "assistants=v2"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", 64 * MIB)]) as ch:
        yield ch


def _post(server, path: str, content: bytes | str) -> httpx.Response:
    if isinstance(content, str):
        content = content.encode()
    return httpx.post(
        server.base_url + path, content=content, headers={**HEADERS, "Content-Type": "application/json"}, timeout=60
    )


def _get(server, path: str, headers: dict | None = None) -> httpx.Response:
    return httpx.get(server.base_url + path, headers={**HEADERS, **(headers or {})}, timeout=60)


def _refused(response: httpx.Response, param: str | None = "any") -> dict:
    """The OpenAI error envelope of a 400 (naming `param` unless "any"), short whatever the input."""
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param != "any":
        assert error["param"] == param, error
    assert len(response.content) < 8192  # a huge value is never echoed back
    return error


def _tenant_usable(server) -> None:
    for path in ("/assistants?limit=100", "/files", "/vector_stores?limit=100"):
        response = _get(server, path)
        assert response.status_code == 200, (path, response.text[:500])


def _marked(server, marker: str) -> list:
    data = _get(server, "/assistants?limit=100").json()["data"]
    return [a for a in data if a["metadata"].get("marker") == marker]


def _function(parameters: str) -> str:
    return f'{{"type":"function","function":{{"name":"f","parameters":{parameters}}}}}'


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# (case id, raw body of POST /assistants (metadata.marker is added), expected param or "any")
ASSISTANT_BODIES = [
    ("infinity-in-schema", '"tools":[' + _function('{"x":Infinity}') + "]", "any"),
    ("minus-infinity-in-schema", '"tools":[' + _function('{"x":-Infinity}') + "]", "any"),
    ("nan-in-schema", '"tools":[' + _function('{"x":NaN}') + "]", "any"),
    ("1e999-in-schema", '"tools":[' + _function('{"x":1e999}') + "]", "tools[0].function.parameters.x"),
    ("1e999-temperature", '"temperature":1e999', "temperature"),
    ("struct-depth-25", '"tools":[' + _function(_nested(25)) + "]", "any"),
    ("struct-depth-40", '"tools":[' + _function(_nested(40)) + "]", "any"),
    ("array-depth-100000", '"tools":' + "[" * 100_000 + "]" * 100_000, "any"),
    ("lone-surrogate-name", '"name":"\\ud800"', "name"),
    ("lone-surrogate-enum", '"reasoning_effort":"\\udfff"', "reasoning_effort"),
    ("lone-surrogate-metadata-value", '"metadata":{"k":"\\ud800x"}', "metadata.k"),
    ("lone-surrogate-metadata-key", '"metadata":{"\\ud800":"v"}', "metadata"),
    ("name-257", f'"name":"{"n" * 257}"', "name"),
    ("description-513", f'"description":"{"d" * 513}"', "description"),
    ("instructions-256001", f'"instructions":"{"i" * 256_001}"', "instructions"),
    ("metadata-17-pairs", '"metadata":{' + ",".join(f'"k{i}":"v"' for i in range(17)) + "}", "metadata"),
    ("metadata-key-65", f'"metadata":{{"{"k" * 65}":"v"}}', "metadata"),
    ("metadata-value-513", f'"metadata":{{"k":"{"v" * 513}"}}', "metadata"),
    ("129-tools", '"tools":[' + ",".join(['{"type":"code_interpreter"}'] * 129) + "]", "tools"),
    ("object-as-type-tag", '"response_format":{"type":{}}', "response_format.type"),
    ("array-as-type-tag", '"tools":[{"type":[]}]', "tools[0].type"),
    ("huge-enum-value", f'"reasoning_effort":"{"x" * MIB}"', "reasoning_effort"),
    ("huge-unknown-parameter", f'"{"u" * MIB}":1', "any"),
]


@pytest.mark.parametrize("case,fields,param", ASSISTANT_BODIES, ids=[c[0] for c in ASSISTANT_BODIES])
def test_a_bad_assistant_body_is_a_400_and_stores_nothing(server, case, fields, param):
    marker = uuid.uuid4().hex
    body = f'{{"model":"{MODEL}","metadata":{{"marker":"{marker}"}},{fields}}}'
    if "metadata" in fields.split(":", 1)[0]:  # the case's own metadata replaces the marker
        body = f'{{"model":"{MODEL}",{fields}}}'
    _refused(_post(server, "/assistants", body), param)
    assert _marked(server, marker) == []
    _tenant_usable(server)


def test_a_10_mib_model_is_refused_and_listing_still_works(server):
    marker = uuid.uuid4().hex
    for _ in range(7):  # seven of them once made the default list page exceed the gRPC limit
        body = json.dumps({"model": "m" * (10 * MIB), "metadata": {"marker": marker}})
        response = _post(server, "/assistants", body)  # over the JSON body limit (ASSISTD_MAX_JSON_BYTES, 4 MiB)
        assert response.status_code == 413, response.text[:500]
        assert response.json()["error"]["code"] == "request_too_large"
        _refused(_post(server, "/assistants", json.dumps({"model": "m" * (3 * MIB)})), "model")
    _refused(_post(server, "/assistants", json.dumps({"model": "m" * 257})), "model")
    assert _marked(server, marker) == []
    _tenant_usable(server)


@pytest.mark.parametrize(
    "raw,param",
    [
        (b'{"model":"m","name":"\xff"}', None),
        (b'{"model":"m","name":"\xed\xa0\x80"}', "name"),  # Python's decoder passes surrogates through
        (b'{"model":"m"', None),
        (b"[1,2]", None),
    ],
    ids=["invalid-utf8", "utf8-encoded-surrogate", "truncated", "not-an-object"],
)
def test_bodies_that_are_not_json_objects_are_400(server, raw, param):
    _refused(_post(server, "/assistants", raw), param)
    _tenant_usable(server)


@pytest.mark.parametrize(
    "path,param",
    [
        ("/assistants?order=%ED%A0%80", "order"),
        ("/assistants?limit=1e999", "limit"),
        ("/assistants?limit=99999999999999999999999", "limit"),
        ("/assistants?after=" + "a" * 300, "after"),
        ("/assistants?%ED%A0%80=1", "any"),
    ],
    ids=["surrogate-enum", "float-limit", "huge-limit", "long-cursor", "surrogate-key"],
)
def test_bad_query_strings_are_400(server, path, param):
    _refused(_get(server, path), param)
    _tenant_usable(server)


@pytest.mark.parametrize("path", ["/assistants/%ED%A0%80", "/assistants/%FF", "/threads/%00"])
def test_bad_ids_in_paths_are_not_found_not_500(server, path):
    assert _get(server, path).status_code in (400, 404)


@pytest.mark.parametrize(
    "value",
    [str(2**64), "9" * 23, "9" * 5000, "\u00b2", "-1", "1.5"],
    ids=["2^64", "23-digits", "5000-digits", "superscript-two", "negative", "decimal"],
)
def test_a_last_event_id_that_is_not_a_uint64_is_400(server, client, value):
    thread = client.beta.threads.create()
    response = _get(server, f"/threads/{thread.id}/runs/run_x/events", {"Last-Event-ID": value.encode("latin-1")})
    _refused(response, "after_sequence")


# ---------------------------------------------------------------- uploads


def _upload(server, body: bytes, boundary: str = "xx") -> httpx.Response:
    return httpx.post(
        server.base_url + "/files",
        content=body,
        headers={**HEADERS, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )


def _part(name: str, value: bytes, disposition_extra: str = "") -> bytes:
    return (
        f'--xx\r\nContent-Disposition: form-data; name="{name}"{disposition_extra}\r\n\r\n'.encode() + value + b"\r\n"
    )


PURPOSE = _part("purpose", b"assistants")
UPLOADS = [
    ("truncated", PURPOSE + b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello'),
    ("truncated-headers", PURPOSE + b"--xx\r\nContent-Disposition: form-da"),
    ("raw-nul-in-name", PURPOSE + _part("file", b"hello", '; filename="a\x00b.txt"') + b"--xx--\r\n"),
    (
        "encoded-nul-in-name",
        PURPOSE + _part("file", b"hello", "; filename*=UTF-8''a%00b.txt") + b"--xx--\r\n",
    ),
    ("newline-in-name", PURPOSE + _part("file", b"hello", "; filename*=UTF-8''a%0Ab.txt") + b"--xx--\r\n"),
    ("name-300", PURPOSE + _part("file", b"hello", f'; filename="{"n" * 300}.txt"') + b"--xx--\r\n"),
    (
        "superscript-expiry",
        PURPOSE
        + _part("expires_after[seconds]", "\u00b2".encode())
        + _part("file", b"x", '; filename="a"')
        + b"--xx--\r\n",
    ),
    ("huge-expiry", PURPOSE + _part("expires_after[seconds]", b"9" * 5000) + b"--xx--\r\n"),
    ("invalid-utf8-purpose", _part("purpose", b"\xff\xfe") + _part("file", b"x", '; filename="a"') + b"--xx--\r\n"),
]


@pytest.mark.parametrize("case,body", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_a_bad_upload_is_a_400_and_leaves_no_file(server, client, case, body):
    before = {f.id for f in client.files.list()}
    response = _upload(server, body)
    assert response.status_code == 400, response.text[:500]
    assert response.json()["error"]["type"] == "invalid_request_error"
    if "name" in case:
        assert response.json()["error"]["param"] == "file"
    assert {f.id for f in client.files.list()} == before
    if server.env["ASSISTD_STORE"].startswith("sqlite"):
        assert not list((server.db.parent / "files").rglob("*.partial"))


# ---------------------------------------------------------------- gRPC


def _text(value: str) -> message_pb2.MessageContent:
    return message_pb2.MessageContent(text=message_pb2.TextContent(value=value))


def _invalid(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert len(info.value.details()) < 4096
    return info.value


def test_grpc_role_97_is_refused_everywhere_and_the_thread_lists(server, channel):
    threads = thread_pb2_grpc.ThreadServiceStub(channel)
    messages = message_pb2_grpc.MessageServiceStub(channel)
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    thread_id = threads.CreateThread(thread_pb2.CreateThreadRequest()).thread.id
    bad = message_pb2.NewMessage(role=97, content=[_text("hi")])
    _invalid(
        lambda: messages.CreateMessage(
            message_pb2.CreateMessageRequest(thread_id=thread_id, role=97, content=[_text("hi")])
        )
    )
    _invalid(lambda: threads.CreateThread(thread_pb2.CreateThreadRequest(messages=[bad])))
    _invalid(
        lambda: runs.CreateRun(
            run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id="asst_x", additional_messages=[bad])
        )
    )
    _invalid(
        lambda: runs.CreateThreadAndRun(
            run_service_pb2.CreateThreadAndRunRequest(
                assistant_id="asst_x", thread=run_service_pb2.ThreadParams(messages=[bad])
            )
        )
    )
    response = _get(server, f"/threads/{thread_id}/messages")
    assert response.status_code == 200 and response.json()["data"] == []


def _schema(value: struct_pb2.Value) -> assistant_pb2.Tool:
    parameters = struct_pb2.Struct()
    parameters.fields["x"].CopyFrom(value)
    return assistant_pb2.Tool(function=assistant_pb2.FunctionDefinition(name="f", parameters=parameters))


def _deep_struct(depth: int) -> struct_pb2.Struct:
    inner = struct_pb2.Struct()
    for _ in range(depth - 1):
        outer = struct_pb2.Struct()
        outer.fields["a"].struct_value.CopyFrom(inner)
        inner = outer
    return inner


GRPC_ASSISTANTS = [
    ("inf-in-schema", dict(tools=[_schema(struct_pb2.Value(number_value=float("inf")))])),
    ("nan-in-schema", dict(tools=[_schema(struct_pb2.Value(number_value=float("nan")))])),
    ("nan-temperature", dict(temperature=float("nan"))),
    ("inf-top-p", dict(top_p=float("inf"))),
    (
        "struct-depth-30",
        dict(
            tools=[assistant_pb2.Tool(function=assistant_pb2.FunctionDefinition(name="f", parameters=_deep_struct(30)))]
        ),
    ),
    ("10-mib-model", dict(model="m" * (10 * MIB))),
    ("10-mib-name", dict(name="n" * (10 * MIB))),
    ("huge-metadata-key", dict(metadata={"k" * MIB: "v"})),
    (
        "long-file-id",
        dict(
            tool_resources=assistant_pb2.ToolResources(
                code_interpreter=assistant_pb2.CodeInterpreterResources(file_ids=["f" * 300])
            )
        ),
    ),
]


@pytest.mark.parametrize("case,fields", GRPC_ASSISTANTS, ids=[c[0] for c in GRPC_ASSISTANTS])
def test_grpc_bad_assistant_is_refused_and_the_tenant_still_lists(server, channel, case, fields):
    marker = uuid.uuid4().hex
    request = assistant_pb2.CreateAssistantRequest(model=MODEL, metadata={"marker": marker})
    for name, value in fields.items():
        if name == "metadata":
            request.metadata.clear()
            request.metadata.update(value)
        elif name in ("tools",):
            request.tools.extend(value)
        elif name == "tool_resources":
            request.tool_resources.CopyFrom(value)
        else:
            setattr(request, name, value)
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    _invalid(lambda: stub.CreateAssistant(request))
    assert _marked(server, marker) == []
    _tenant_usable(server)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def _number(cls, name: str) -> int:
    return cls.DESCRIPTOR.fields_by_name[name].number


def _raw_call(channel, method: str):
    return channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize("case", ["bad-utf8-string", "nesting-past-protobuf-limit"])
def test_grpc_bytes_that_are_no_message_are_invalid_argument(server, channel, case):
    if case == "bad-utf8-string":
        raw = assistant_pb2.CreateAssistantRequest(model="ab").SerializeToString().replace(b"ab", b"\xff\xfe")
    else:  # a Struct 60 deep: over 100 protobuf levels, which the decoder refuses (and cannot build)
        struct = b""
        for _ in range(60):  # Struct{fields: {"a": Value{struct_value: <inner>}}}, in wire format
            struct = _field(1, _field(1, b"a") + _field(2, _field(5, struct)))
        function = _field(_number(assistant_pb2.FunctionDefinition, "name"), b"f") + _field(
            _number(assistant_pb2.FunctionDefinition, "parameters"), struct
        )
        tool = _field(_number(assistant_pb2.Tool, "function"), function)
        raw = assistant_pb2.CreateAssistantRequest(model=MODEL).SerializeToString() + _field(
            _number(assistant_pb2.CreateAssistantRequest, "tools"), tool
        )
    error = _invalid(lambda: _raw_call(channel, "/assistd.v1.AssistantService/CreateAssistant")(raw))
    assert "upb" not in error.details() and "DecodeError" not in error.details()
    _tenant_usable(server)


def test_grpc_upload_with_a_part_that_is_no_message_is_refused_and_stores_nothing(server, channel, client):
    before = {f.id for f in client.files.list()}
    parts = [
        file_pb2.UploadFileRequest(purpose=file_pb2.FILE_PURPOSE_ASSISTANTS).SerializeToString(),
        file_pb2.UploadFileRequest(filename="ab.txt").SerializeToString().replace(b"ab", b"\xff\xfe"),
        file_pb2.UploadFileRequest(chunk=b"hello").SerializeToString(),
    ]
    upload = channel.stream_unary(
        "/assistd.v1.FileService/UploadFile", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    _invalid(lambda: upload(iter(parts)))
    assert {f.id for f in client.files.list()} == before
