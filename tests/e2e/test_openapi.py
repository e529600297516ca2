"""GET /openapi.json, and schemathesis fuzzing the real edge with it (issue 13).

The document is generated from the edge's router and the openai SDK's types (edge/openapi.py); the
fuzz run sends ~5,000 generated requests, valid and invalid, to every operation of a live
`assistd serve` and fails on any 5xx, any status the document does not list, and any JSON response
that does not match the SDK's schema for it."""

import json
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from edge.routes import ROUTES
from tests import openapi_fuzz
from tests.conftest import MODEL, Server

# Cases per operation in the fuzzing phase. The coverage phase adds its own boundary and invalid
# cases for every parameter and body field, most of the run: ~5,400 cases in ~2 minutes in all.
MAX_EXAMPLES = 5
CONFIG = Path(__file__).resolve().parent.parent / "schemathesis-make-test.toml"  # what make test leaves out


@pytest.fixture(scope="module")
def fuzz_server(provider, tmp_path_factory):
    """A server of its own: the objects the fuzzer creates stay out of other tests' listings."""
    srv = Server(tmp_path_factory.mktemp("assistd-fuzz"), provider).start()
    yield srv
    srv.stop()


def _document(server: Server) -> dict:
    url = server.base_url.removesuffix("/v1") + "/openapi.json"
    with urllib.request.urlopen(url, timeout=30) as response:  # no Authorization header: public
        assert response.headers["Content-Type"].startswith("application/json")
        return json.load(response)


def test_document_lists_every_route_with_the_sdk_schemas(fuzz_server):
    doc = _document(fuzz_server)
    assert doc["openapi"] == "3.1.0"
    operations = {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}
    for route in ROUTES:
        assert operations[route.method, route.path]["operationId"] == route.rpc
    assert ("POST", "/v1/files") in operations and ("GET", "/v1/files/{file_id}/content") in operations
    create = operations["POST", "/v1/assistants"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AssistantCreateParams"
    }
    # path parameters are not body fields (the SDK's params TypedDicts carry them)
    submit = doc["components"]["schemas"]["RunSubmitToolOutputsParamsNonStreaming"]
    assert "thread_id" not in submit["properties"] and "thread_id" not in submit.get("required", [])
    assert "include" in {p["name"] for p in operations["POST", "/v1/threads/{thread_id}/runs"]["parameters"]}

    # What the SDK got back from the real edge validates against the document's schema for it.
    client = fuzz_server.client()
    assistant = client.beta.assistants.create(model=MODEL, name="doc", tools=[{"type": "file_search"}])
    raw = client.beta.assistants.with_raw_response.retrieve(assistant.id).http_response.json()
    # the document as the root, so its "#/components/schemas/..." references resolve
    schema = {**create["responses"]["200"]["content"]["application/json"]["schema"], "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(raw)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**raw, "created_at": "yesterday"})

    # The Responses routes speak the SDK's Responses types, less the body fields assistd refuses.
    create_response = operations["POST", "/v1/responses"]
    assert create_response["operationId"] == "CreateResponse"
    body = doc["components"]["schemas"]["CreateResponseRequest"]
    variants = [doc["components"]["schemas"][v["$ref"].rsplit("/", 1)[1]] for v in body["anyOf"]]
    assert all("max_tool_calls" in v["properties"] and "moderation" not in v["properties"] for v in variants)
    answer = client.responses.with_raw_response.create(model=MODEL, input="hi").http_response.json()
    schema = {
        **create_response["responses"]["200"]["content"]["application/json"]["schema"],
        "components": doc["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(answer)
    assert operations["GET", "/v1/responses/{response_id}/input_items"]["operationId"] == "ListInputItems"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, tmp_path):
    result = openapi_fuzz.run(fuzz_server.base_url, MAX_EXAMPLES, tmp_path, timeout=900, config=CONFIG)
    summary = result.output[result.output.rfind("SUMMARY") :]
    print(openapi_fuzz.printable(openapi_fuzz.command(fuzz_server.base_url, MAX_EXAMPLES, tmp_path, config=CONFIG)))
    print(summary)
    assert result.cases >= 1500, summary
    assert result.returncode == 0, result.output[-20000:]
    assert result.failures == 0
