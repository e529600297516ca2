"""The OpenAPI 3.1 document of GET /openapi.json (served by edge/openapi_route.py), generated from
the edge's router and the openai SDK's types.

Nothing here is hand-written JSON. The paths are the aiohttp app's routes (ROUTES, the file routes,
and whatever else is registered); the schemas are the ones the SDK parses and sends: request params
are its TypedDicts, responses its pydantic models, both turned into JSON Schema by pydantic. OPERATIONS
is the one table that says which SDK types a route speaks; a route missing from it is still listed,
as an untyped operation. `openai` is a runtime dependency for this (litellm already pulls it in).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_type_hints

import pydantic
from aiohttp import web
from openai import pagination
from openai.types import (
    ContainerCreateResponse,
    ContainerListResponse,
    ContainerRetrieveResponse,
    FileDeleted,
    FileObject,
    FilePurpose,
    Model,
    VectorStore,
    VectorStoreDeleted,
    VectorStoreSearchResponse,
    container_create_params,
    container_list_params,
    file_list_params,
    vector_store_create_params,
    vector_store_list_params,
    vector_store_search_params,
    vector_store_update_params,
)
from openai.types.beta import (
    Assistant,
    AssistantDeleted,
    Thread,
    ThreadDeleted,
    assistant_create_params,
    assistant_list_params,
    assistant_update_params,
    thread_create_and_run_params,
    thread_create_params,
    thread_update_params,
)
from openai.types.beta.threads import (
    Message,
    MessageDeleted,
    Run,
    message_create_params,
    message_list_params,
    message_update_params,
    run_create_params,
    run_list_params,
    run_submit_tool_outputs_params,
    run_update_params,
)
from openai.types.beta.threads.runs import RunStep, step_list_params, step_retrieve_params
from openai.types.containers import FileCreateResponse, FileListResponse, FileRetrieveResponse
from openai.types.containers import file_list_params as container_file_list_params
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
    conversation_create_params,
    conversation_update_params,
    item_create_params,
    item_list_params,
)
from openai.types.responses import (
    InputTokenCountResponse,
    Response,
    ResponseItem,
    input_item_list_params,
    input_token_count_params,
    response_create_params,
    response_retrieve_params,
)
from openai.types.shared import ErrorObject
from openai.types.vector_stores import (
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
    file_batch_create_params,
    file_batch_list_files_params,
    file_create_params,
    file_update_params,
)
from openai.types.vector_stores import (
    file_list_params as vs_file_list_params,
)

from service.responses.request import SUPPORTED

_REF = "#/components/schemas/{model}"


class ErrorResponse(pydantic.BaseModel):
    """The envelope every error response has."""

    error: ErrorObject


class ResponseDeleted(pydantic.BaseModel):
    """What DELETE /v1/responses/{id} answers (the SDK's delete returns nothing, so has no type)."""

    id: str
    object: Literal["response"]
    deleted: bool


@dataclass(frozen=True)
class Operation:
    """The SDK types of one route. body: a TypedDict (or Union of them) sent as JSON; query: a
    TypedDict whose keys are query parameters; query_keys: keys of `body` the SDK sends in the query."""

    response: Any = None
    body: Any = None
    query: Any = None
    query_keys: tuple[str, ...] = ()
    stream: bool = False  # the body's `stream: true` turns the answer into SSE
    # keys of `body` assistd refuses (400 unknown_parameter), left out of the document
    unread: frozenset[str] = frozenset()
    always_stream: bool = False
    errors: tuple[int, ...] = (400, 401, 404)


_LIST_ERRORS = (400, 401)
_CREATE_ERRORS = (400, 401, 404)  # a create refers to other objects (files, assistants)


def _unread_by_responses(params: Any) -> frozenset[str]:
    """The keys of a Responses params TypedDict that service/responses/request.py refuses."""
    keys = {key for part in get_args(params) or (params,) for key in get_type_hints(part)}
    return frozenset(keys - SUPPORTED - {"stream"})


# gRPC method (the route's rpc) -> its SDK types.
OPERATIONS: dict[str, Operation] = {
    "ListModels": Operation(pagination.SyncPage[Model], errors=(401,)),
    "ListFiles": Operation(
        pagination.SyncCursorPage[FileObject], query=file_list_params.FileListParams, errors=_LIST_ERRORS
    ),
    "GetFile": Operation(FileObject),
    "DeleteFile": Operation(FileDeleted),
    "CreateVectorStore": Operation(
        VectorStore, vector_store_create_params.VectorStoreCreateParams, errors=_CREATE_ERRORS
    ),
    "ListVectorStores": Operation(
        pagination.SyncCursorPage[VectorStore],
        query=vector_store_list_params.VectorStoreListParams,
        errors=_LIST_ERRORS,
    ),
    "GetVectorStore": Operation(VectorStore),
    "UpdateVectorStore": Operation(VectorStore, vector_store_update_params.VectorStoreUpdateParams),
    "DeleteVectorStore": Operation(VectorStoreDeleted),
    "SearchVectorStore": Operation(
        pagination.SyncPage[VectorStoreSearchResponse], vector_store_search_params.VectorStoreSearchParams
    ),
    "CreateVectorStoreFile": Operation(VectorStoreFile, file_create_params.FileCreateParams),
    "ListVectorStoreFiles": Operation(
        pagination.SyncCursorPage[VectorStoreFile], query=vs_file_list_params.FileListParams
    ),
    "GetVectorStoreFile": Operation(VectorStoreFile),
    "UpdateVectorStoreFile": Operation(VectorStoreFile, file_update_params.FileUpdateParams),
    "DeleteVectorStoreFile": Operation(VectorStoreFileDeleted),
    "CreateFileBatch": Operation(VectorStoreFileBatch, file_batch_create_params.FileBatchCreateParams),
    "GetFileBatch": Operation(VectorStoreFileBatch),
    "CancelFileBatch": Operation(VectorStoreFileBatch),
    "ListFileBatchFiles": Operation(
        pagination.SyncCursorPage[VectorStoreFile], query=file_batch_list_files_params.FileBatchListFilesParams
    ),
    "CreateAssistant": Operation(Assistant, assistant_create_params.AssistantCreateParams, errors=_CREATE_ERRORS),
    "ListAssistants": Operation(
        pagination.SyncCursorPage[Assistant], query=assistant_list_params.AssistantListParams, errors=_LIST_ERRORS
    ),
    "GetAssistant": Operation(Assistant),
    "UpdateAssistant": Operation(Assistant, assistant_update_params.AssistantUpdateParams),
    "DeleteAssistant": Operation(AssistantDeleted),
    "CreateThread": Operation(Thread, thread_create_params.ThreadCreateParams, errors=_CREATE_ERRORS),
    "CreateThreadAndRun": Operation(
        Run, thread_create_and_run_params.ThreadCreateAndRunParams, stream=True, errors=_CREATE_ERRORS
    ),
    "GetThread": Operation(Thread),
    "UpdateThread": Operation(Thread, thread_update_params.ThreadUpdateParams),
    "DeleteThread": Operation(ThreadDeleted),
    "CreateMessage": Operation(Message, message_create_params.MessageCreateParams),
    "ListMessages": Operation(pagination.SyncCursorPage[Message], query=message_list_params.MessageListParams),
    "GetMessage": Operation(Message),
    "UpdateMessage": Operation(Message, message_update_params.MessageUpdateParams),
    "DeleteMessage": Operation(MessageDeleted),
    "CreateConversation": Operation(
        Conversation, conversation_create_params.ConversationCreateParams, errors=_CREATE_ERRORS
    ),
    "GetConversation": Operation(Conversation),
    "UpdateConversation": Operation(Conversation, conversation_update_params.ConversationUpdateParams),
    "DeleteConversation": Operation(ConversationDeletedResource),
    "CreateConversationItems": Operation(
        ConversationItemList, item_create_params.ItemCreateParams, query_keys=("include",), errors=_CREATE_ERRORS
    ),
    "ListConversationItems": Operation(
        pagination.SyncConversationCursorPage[ConversationItem], query=item_list_params.ItemListParams
    ),
    "GetConversationItem": Operation(ConversationItem),
    "DeleteConversationItem": Operation(Conversation),
    "CreateResponse": Operation(
        Response,
        response_create_params.ResponseCreateParams,
        stream=True,
        errors=_CREATE_ERRORS,
        unread=_unread_by_responses(response_create_params.ResponseCreateParams),
    ),
    "GetResponse": Operation(Response, query=response_retrieve_params.ResponseRetrieveParams, stream=True),
    "DeleteResponse": Operation(ResponseDeleted),
    "CancelResponse": Operation(Response),
    "ListInputItems": Operation(
        pagination.SyncCursorPage[ResponseItem], query=input_item_list_params.InputItemListParams
    ),
    "CountInputTokens": Operation(
        InputTokenCountResponse,
        input_token_count_params.InputTokenCountParams,
        errors=_CREATE_ERRORS,
        unread=_unread_by_responses(input_token_count_params.InputTokenCountParams),
    ),
    "CreateRun": Operation(Run, run_create_params.RunCreateParams, query_keys=("include",), stream=True),
    "ListRuns": Operation(pagination.SyncCursorPage[Run], query=run_list_params.RunListParams),
    "GetRun": Operation(Run),
    "UpdateRun": Operation(Run, run_update_params.RunUpdateParams),
    "CancelRun": Operation(Run),
    "SubmitToolOutputs": Operation(Run, run_submit_tool_outputs_params.RunSubmitToolOutputsParams, stream=True),
    "WatchRun": Operation(always_stream=True),
    "ListRunSteps": Operation(pagination.SyncCursorPage[RunStep], query=step_list_params.StepListParams),
    "GetRunStep": Operation(RunStep, query=step_retrieve_params.StepRetrieveParams),
    "CreateContainer": Operation(
        ContainerCreateResponse, container_create_params.ContainerCreateParams, errors=_CREATE_ERRORS
    ),
    "ListContainers": Operation(
        pagination.SyncCursorPage[ContainerListResponse],
        query=container_list_params.ContainerListParams,
        errors=_LIST_ERRORS,
    ),
    "GetContainer": Operation(ContainerRetrieveResponse),
    "DeleteContainer": Operation(),  # the SDK reads no body: {"id", "object": "container.deleted", "deleted"}
    "ListContainerFiles": Operation(
        pagination.SyncCursorPage[FileListResponse], query=container_file_list_params.FileListParams
    ),
    "GetContainerFile": Operation(FileRetrieveResponse),
    "DeleteContainerFile": Operation(),  # the SDK reads no body either
}


def _rpc(handler: Any) -> str | None:
    route = getattr(handler, "route", None)  # edge.app.Handler
    return getattr(route, "rpc", None) or getattr(handler, "rpc", None)  # edge/responses.py's handlers


def _name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


class _Schemas:
    """Collects the JSON Schemas of SDK types, generated in one pass so shared definitions
    (and the SDK's several classes called e.g. `ToolResources`) get one distinct name each."""

    def __init__(self) -> None:
        self._wanted: dict[str, Any] = {}
        self._drop: dict[str, set[str]] = {}

    def ref(self, tp: Any, drop: Iterable[str] = (), name: str | None = None) -> dict:
        """A $ref to tp's schema, under its own name (or `name`, for a Union); `drop`: keys of a params
        TypedDict that the SDK sends in the path or query, not in the body."""
        key = _name(tp.__name__ if isinstance(tp, type) else name or repr(tp))
        if key in self._wanted and self._wanted[key] is not tp:
            key = _name(f"{tp.__module__}.{key}")
        self._wanted[key] = tp
        if drop:
            self._drop.setdefault(key, set()).update(drop)
        return {"$ref": _REF.format(model=key)}

    def components(self) -> dict:
        mode: Literal["validation"] = "validation"  # responses too: what the SDK accepts when it parses them
        inputs = [(key, mode, pydantic.TypeAdapter(tp)) for key, tp in self._wanted.items()]
        top, defs = pydantic.TypeAdapter.json_schemas(inputs, ref_template=_REF)
        components = {_name(k): v for k, v in defs.get("$defs", {}).items()}
        for (key, _), schema in top.items():
            if "$ref" in schema and len(schema) == 1:
                target = schema["$ref"].rsplit("/", 1)[1]
                if target != key:
                    components[key] = schema
            else:
                components[key] = schema
        for key, names in self._drop.items():
            _drop_keys(components, components[key], names)
        return components


def _drop_keys(components: dict, schema: dict, names: set[str]) -> None:
    """Removes names from an object schema, or from each object of a union (one level of $ref)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    for branch in [*schema.get("anyOf", ()), *schema.get("oneOf", ())]:
        _drop_keys(components, branch, names)
    for name in names:
        schema.get("properties", {}).pop(name, None)
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in names]


def _typeddict_parts(tp: Any) -> Iterable[Any]:
    """The TypedDicts of a TypedDict or of a Union of them (e.g. RunCreateParams)."""
    return get_args(tp) or (tp,)


def _query_parameters(schemas: _Schemas, tp: Any, keys: Iterable[str] | None, path: set[str]) -> list[dict]:
    hints: dict[str, Any] = {}
    for part in _typeddict_parts(tp):
        hints.update(get_type_hints(part))
    wanted = [k for k in (hints if keys is None else keys) if k in hints and k not in path]
    parameters = []
    for key in wanted:
        schema = pydantic.TypeAdapter(hints[key]).json_schema(ref_template=_REF)
        if "$defs" in schema:  # a query value with its own definitions: keep it whole in components
            schema = schemas.ref(hints[key])
        parameters.append({"name": key, "in": "query", "required": False, "schema": schema})
    return parameters


def _error_responses(schemas: _Schemas, statuses: Iterable[int]) -> dict:
    error = {"application/json": {"schema": schemas.ref(ErrorResponse)}}
    return {str(status): {"description": "An OpenAI error envelope.", "content": error} for status in statuses}


def _typed(schemas: _Schemas, rpc: str, op: Operation, parameters: list[dict]) -> dict:
    operation: dict[str, Any] = {"parameters": parameters}
    path = {parameter["name"] for parameter in parameters}
    if op.query is not None:
        parameters += _query_parameters(schemas, op.query, None, path)
    if op.body is not None:
        parameters += _query_parameters(schemas, op.body, op.query_keys, path)
        body = schemas.ref(op.body, drop=path | set(op.query_keys) | op.unread, name=f"{rpc}Request")
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    content: dict[str, Any] = {}
    if op.response is not None:
        content["application/json"] = {"schema": schemas.ref(op.response)}
    if op.stream or op.always_stream:
        content["text/event-stream"] = {"schema": _SSE_EVENT}
    # Any call may meet its tenant's limits (429), and any JSON body the size limit (413).
    statuses = (*op.errors, *((413,) if op.body is not None and 413 not in op.errors else ()), 429)
    operation["responses"] = {"200": {"description": "OK", "content": content}, **_error_responses(schemas, statuses)}
    return operation


# One event of an SSE stream (OpenAPI 3.1: a text/event-stream schema describes each event): its
# `data` is JSON in both dialects, but `[DONE]` ends Assistants streams.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}


def _plain(parameters: list[dict]) -> dict:
    return {"parameters": parameters, "responses": {"default": {"description": "Not described by the SDK's types."}}}


def _upload(schemas: _Schemas) -> dict:
    """POST /v1/files takes multipart form fields; the SDK's FileCreateParams holds a file object,
    which has no JSON Schema, so the form is laid out from its parts."""
    form = {
        "type": "object",
        "required": ["file", "purpose"],
        "properties": {
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "purpose": pydantic.TypeAdapter(FilePurpose).json_schema(),
            "expires_after[anchor]": pydantic.TypeAdapter(Literal["created_at"]).json_schema(),
            "expires_after[seconds]": pydantic.TypeAdapter(int).json_schema(),
        },
    }
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schemas.ref(FileObject)}}},
            **_error_responses(schemas, (400, 401, 413, 429)),
        },
    }


def _container_upload(schemas: _Schemas, parameters: list[dict]) -> dict:
    """POST /v1/containers/{container_id}/files: a multipart `file`, or JSON `{"file_id": ...}`."""
    form = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
    }
    copy = {"type": "object", "required": ["file_id"], "properties": {"file_id": {"type": "string"}}}
    created = {"application/json": {"schema": schemas.ref(FileCreateResponse)}}
    return {
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}, "application/json": {"schema": copy}},
        },
        "responses": {
            "200": {"description": "OK", "content": created},
            **_error_responses(schemas, (400, 401, 404, 413)),
        },
    }


def _content(schemas: _Schemas, parameters: list[dict]) -> dict:
    binary = {
        "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
    }
    return {
        "parameters": parameters,
        "responses": {
            "200": {"description": "The file's bytes.", "content": binary},
            **_error_responses(schemas, (401, 404, 429)),
        },
    }


# Routes the edge adds by hand (edge/app.py), by (method, path).
_HAND = {
    ("POST", "/v1/files"): lambda schemas, parameters: _upload(schemas),
    ("GET", "/v1/files/{file_id}/content"): _content,
    ("POST", "/v1/containers/{container_id}/files"): _container_upload,
    ("GET", "/v1/containers/{container_id}/files/{file_id}/content"): _content,
}


def document(app: web.Application) -> dict:
    """The OpenAPI document of app's routes."""
    schemas = _Schemas()
    paths: dict[str, dict] = {}
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path")
        if not path:
            continue
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        for route in resource:
            method = route.method
            if method in ("HEAD", "*"):  # aiohttp's automatic HEAD for every GET
                continue
            rpc = _rpc(route.handler)
            if rpc in OPERATIONS:
                operation = _typed(schemas, rpc, OPERATIONS[rpc], list(parameters))
            elif (method, path) in _HAND:
                operation = _HAND[method, path](schemas, list(parameters))
            else:
                operation = _plain(list(parameters))
            operation["operationId"] = rpc or getattr(route.handler, "__name__", f"{method} {path}")
            paths.setdefault(path, {})[method.lower()] = operation
    _link_creates(paths)
    components = schemas.components()
    _reconcile(components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assistd",
            "version": "v1",
            "description": "The OpenAI Assistants API as assistd serves it. Schemas are the openai SDK's types.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _reconcile(components: dict) -> None:
    """Where the SDK's types disagree with each other: an upload may give purpose "evals" (FilePurpose),
    which FileObject.purpose does not list (OpenAI's own spec has the same gap). A file keeps the
    purpose it was uploaded with, so the response schema lists every purpose an upload accepts."""
    purpose = components["FileObject"]["properties"]["purpose"]
    purpose["enum"] += [value for value in get_args(FilePurpose) if value not in purpose["enum"]]


def _link_creates(paths: dict[str, dict]) -> None:
    """OpenAPI links from each create (POST on a collection) to the operations on what it created
    (`{collection}/{id}/...`): the new object's id, and the create's own path parameters, fill theirs.
    Clients and fuzzers follow them from a create to the object's reads, updates and deletes."""
    for path, item in paths.items():
        create = item.get("post")
        if create is None or path.endswith("}") or "200" not in create["responses"]:
            continue
        own = re.findall(r"{(\w+)}", path)
        for child_path, child in paths.items():
            match = re.match(re.escape(path) + r"/{(\w+)}", child_path)
            if match is None:
                continue
            for operation in child.values():
                parameters = {name: f"$request.path.{name}" for name in own}
                parameters[match.group(1)] = "$response.body#/id"
                create["responses"]["200"].setdefault("links", {})[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": parameters,
                }
