"""Tenant isolation for every route that names an object, over HTTP and over the gRPC port: a
tenant reaching for another's object by its id (assistants, threads, messages, runs, run steps,
the events route, files, vector stores, their files and batches, search, conversations and their
items, responses, containers and their files) gets a 404 / NOT_FOUND, and the owner's objects are unchanged."""

import io
import re

import grpc
import httpx
import openai
import pytest
from assistd.v1 import container_pb2, container_pb2_grpc, response_pb2, response_pb2_grpc

from edge import codec
from edge.app import _method
from edge.routes import ROUTES
from tests.conftest import MODEL, Server

STORES = ["sqlite", "cassandra"]
OWNER, OTHER = "key-acme", "key-globex"

# A body each POST route accepts, so that only ownership can refuse it.
BODIES = {
    "UpdateVectorStore": {"name": "taken"},
    "SearchVectorStore": {"query": "lantern"},
    "CreateVectorStoreFile": {"file_id": "{file_id}"},
    "UpdateVectorStoreFile": {"attributes": {"a": "b"}},
    "CreateFileBatch": {"file_ids": ["{file_id}"]},
    "UpdateAssistant": {"name": "taken"},
    "UpdateThread": {"metadata": {"a": "b"}},
    "CreateMessage": {"role": "user", "content": "intruder"},
    "UpdateMessage": {"metadata": {"a": "b"}},
    "CreateRun": {"assistant_id": "{assistant_id}"},
    "CreateThreadAndRun": {"assistant_id": "{assistant_id}"},
    "UpdateRun": {"metadata": {"a": "b"}},
    "SubmitToolOutputs": {"tool_outputs": [{"tool_call_id": "call_x", "output": "o"}]},
    "UpdateConversation": {"metadata": {"a": "b"}},
    "CreateConversationItems": {"items": [{"type": "message", "role": "user", "content": "intruder"}]},
}
# The /v1/responses routes (edge/responses.py, outside the route table) that name a response.
RESPONSE_ROUTES = [
    ("GET", "/v1/responses/{response_id}"),
    ("GET", "/v1/responses/{response_id}?stream=true&starting_after=0"),
    ("GET", "/v1/responses/{response_id}/input_items"),
    ("POST", "/v1/responses/{response_id}/cancel"),
    ("DELETE", "/v1/responses/{response_id}"),
]
# The container file routes outside the route table (edge/containers.py).
CONTAINER_FILE_ROUTES = [
    ("POST", "/v1/containers/{container_id}/files", {"file_id": "{file_id}"}),
    ("GET", "/v1/containers/{container_id}/files/{container_file_id}/content", None),
]


@pytest.fixture
def owned(provider, tmp_path, store_env):
    """A server with two tenants, and one object of every kind owned by the first."""
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_API_KEYS": f"{OWNER}=acme,{OTHER}=globex"}).start()
    try:
        client = _sdk(server, OWNER)
        file = client.files.create(file=("notes.txt", io.BytesIO(b"the word is lantern")), purpose="assistants")
        store = client.vector_stores.create(name="acme's", file_ids=[file.id])
        batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[file.id])
        assistant = client.beta.assistants.create(model=MODEL, name="acme's")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:acme only]"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
        message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
        conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "acme's"}])
        item = client.conversations.items.list(conversation.id).data[0]
        response = client.responses.create(model=MODEL, input="[reply:acme's answer]")
        container = client.containers.create(name="acme's")
        container_file = client.containers.files.create(container.id, file=("plan.txt", b"acme's plan"))
        ids = {
            "vector_store_id": store.id,
            "file_id": file.id,
            "batch_id": batch.id,
            "assistant_id": assistant.id,
            "thread_id": thread.id,
            "message_id": message.id,
            "run_id": run.id,
            "step_id": step.id,
            "conversation_id": conversation.id,
            "item_id": item.id,
            "response_id": response.id,
            "container_id": container.id,
            "container_file_id": container_file.id,
        }
        yield server, ids
    finally:
        server.stop()


def _sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _fill(value, ids: dict):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _object_routes():
    return [route for route in ROUTES if "{" in route.path]


def _snapshot(server: Server, ids: dict) -> list:
    owner = httpx.Client(base_url=server.base_url.removesuffix("/v1"), headers={"Authorization": f"Bearer {OWNER}"})
    paths = [
        "/v1/assistants/{assistant_id}",
        "/v1/threads/{thread_id}",
        "/v1/threads/{thread_id}/messages",
        "/v1/threads/{thread_id}/runs",
        "/v1/threads/{thread_id}/runs/{run_id}/steps",
        "/v1/files/{file_id}",
        "/v1/vector_stores/{vector_store_id}",
        "/v1/vector_stores/{vector_store_id}/files",
        "/v1/conversations/{conversation_id}",
        "/v1/conversations/{conversation_id}/items",
        "/v1/responses/{response_id}",
        "/v1/containers/{container_id}",
        "/v1/containers/{container_id}/files",
    ]
    with owner:
        answers = [owner.get(_fill(path, ids)) for path in paths]
    assert all(answer.status_code == 200 for answer in answers)
    return [answer.json() for answer in answers]


def test_no_route_reaches_another_tenants_object_over_http(owned):
    server, ids = owned
    before = _snapshot(server, ids)
    other = httpx.Client(
        base_url=server.base_url.removesuffix("/v1"), headers={"Authorization": f"Bearer {OTHER}"}, timeout=30
    )
    tried = 0
    with other:
        for route in _object_routes() + [r for r in ROUTES if r.rpc == "CreateThreadAndRun"]:
            body = _fill(BODIES.get(route.rpc), ids)
            response = other.request(route.method, _fill(route.path, ids), json=body)
            assert response.status_code == 404, (route.method, route.path, response.text[:300])
            tried += 1
        for method, path in RESPONSE_ROUTES:
            response = other.request(method, _fill(path, ids))
            assert response.status_code == 404, (method, path, response.text[:300])
            tried += 1
        for method, path, body in CONTAINER_FILE_ROUTES:
            response = other.request(method, _fill(path, ids), json=_fill(body, ids))
            assert response.status_code == 404, (method, path, response.text[:300])
            tried += 1
        for listing in ("/v1/assistants", "/v1/files", "/v1/vector_stores", "/v1/containers"):
            assert other.get(listing).json()["data"] == []
        content = other.get(_fill("/v1/files/{file_id}/content", ids))
        assert content.status_code == 404
    assert tried >= 30
    assert _snapshot(server, ids) == before


def test_no_rpc_reaches_another_tenants_object_over_grpc(owned):
    server, ids = owned
    before = _snapshot(server, ids)
    tried = 0
    metadata = [("authorization", f"Bearer {OTHER}")]
    with grpc.insecure_channel(server.grpc_target) as channel:
        for route in _object_routes() + [r for r in ROUTES if r.rpc == "CreateThreadAndRun"]:
            request_cls, response_cls, path = _method(route, route.rpc)
            data = {**(_fill(BODIES.get(route.rpc), ids) or {})}
            data.update({name: ids[name] for name in re.findall(r"\{(\w+)\}", route.path)})
            request = codec.parse(data, request_cls)
            with pytest.raises(grpc.RpcError) as info:
                if route.always_stream:
                    call = channel.unary_stream(path, type(request).SerializeToString, response_cls.FromString)
                    list(call(request, metadata=metadata))
                else:
                    channel.unary_unary(path, type(request).SerializeToString, response_cls.FromString)(
                        request, metadata=metadata
                    )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, (path, info.value.details())
            tried += 1
        responses = response_pb2_grpc.ResponseServiceStub(channel)
        response_id = ids["response_id"]
        calls = [
            lambda: responses.GetResponse(response_pb2.GetResponseRequest(response_id=response_id), metadata=metadata),
            lambda: list(
                responses.WatchResponse(response_pb2.WatchResponseRequest(response_id=response_id), metadata=metadata)
            ),
            lambda: responses.ListInputItems(
                response_pb2.ListInputItemsRequest(response_id=response_id), metadata=metadata
            ),
            lambda: responses.CancelResponse(
                response_pb2.CancelResponseRequest(response_id=response_id), metadata=metadata
            ),
            lambda: responses.DeleteResponse(
                response_pb2.DeleteResponseRequest(response_id=response_id), metadata=metadata
            ),
        ]
        containers = container_pb2_grpc.ContainerServiceStub(channel)
        container_id, container_file_id = ids["container_id"], ids["container_file_id"]
        copy = container_pb2.CreateContainerFileRequest(container_id=container_id, file_id=ids["file_id"])
        content = container_pb2.GetContainerFileContentRequest(container_id=container_id, file_id=container_file_id)
        calls += [
            lambda: containers.CreateContainerFile(iter([copy]), metadata=metadata),
            lambda: list(containers.GetContainerFileContent(content, metadata=metadata)),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
            tried += 1
    assert tried >= 30
    assert _snapshot(server, ids) == before
