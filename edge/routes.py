"""THE route table: OpenAI HTTP paths -> gRPC methods. Path parameters fill request fields.
(POST /v1/files and GET /v1/files/{file_id}/content are not JSON: see edge/files.py; nor are
POST /v1/containers/{container_id}/files and its files' content: see edge/containers.py.)"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    service: str  # e.g. "RunService"
    rpc: str  # unary method
    stream_rpc: str | None = None  # used when the body says "stream": true
    always_stream: bool = False  # a watch: SSE whatever the body says


ROUTES = [
    Route("GET", "/v1/models", "ModelService", "ListModels"),
    Route("GET", "/v1/files", "FileService", "ListFiles"),
    Route("POST", "/v1/vector_stores", "VectorStoreService", "CreateVectorStore"),
    Route("GET", "/v1/vector_stores", "VectorStoreService", "ListVectorStores"),
    Route("GET", "/v1/vector_stores/{vector_store_id}", "VectorStoreService", "GetVectorStore"),
    Route("POST", "/v1/vector_stores/{vector_store_id}", "VectorStoreService", "UpdateVectorStore"),
    Route("DELETE", "/v1/vector_stores/{vector_store_id}", "VectorStoreService", "DeleteVectorStore"),
    Route("POST", "/v1/vector_stores/{vector_store_id}/search", "VectorStoreService", "SearchVectorStore"),
    Route("POST", "/v1/vector_stores/{vector_store_id}/files", "VectorStoreService", "CreateVectorStoreFile"),
    Route("GET", "/v1/vector_stores/{vector_store_id}/files", "VectorStoreService", "ListVectorStoreFiles"),
    Route("GET", "/v1/vector_stores/{vector_store_id}/files/{file_id}", "VectorStoreService", "GetVectorStoreFile"),
    Route("POST", "/v1/vector_stores/{vector_store_id}/files/{file_id}", "VectorStoreService", "UpdateVectorStoreFile"),
    Route(
        "DELETE", "/v1/vector_stores/{vector_store_id}/files/{file_id}", "VectorStoreService", "DeleteVectorStoreFile"
    ),
    Route("POST", "/v1/vector_stores/{vector_store_id}/file_batches", "VectorStoreService", "CreateFileBatch"),
    Route("GET", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}", "VectorStoreService", "GetFileBatch"),
    Route(
        "POST",
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
        "VectorStoreService",
        "CancelFileBatch",
    ),
    Route(
        "GET",
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
        "VectorStoreService",
        "ListFileBatchFiles",
    ),
    Route("GET", "/v1/files/{file_id}", "FileService", "GetFile"),
    Route("DELETE", "/v1/files/{file_id}", "FileService", "DeleteFile"),
    Route("POST", "/v1/assistants", "AssistantService", "CreateAssistant"),
    Route("GET", "/v1/assistants", "AssistantService", "ListAssistants"),
    Route("GET", "/v1/assistants/{assistant_id}", "AssistantService", "GetAssistant"),
    Route("POST", "/v1/assistants/{assistant_id}", "AssistantService", "UpdateAssistant"),
    Route("DELETE", "/v1/assistants/{assistant_id}", "AssistantService", "DeleteAssistant"),
    Route("POST", "/v1/threads", "ThreadService", "CreateThread"),
    # Before /v1/threads/{thread_id}: routes match in order.
    Route("POST", "/v1/threads/runs", "RunService", "CreateThreadAndRun", "CreateThreadAndRunStream"),
    Route("GET", "/v1/threads/{thread_id}", "ThreadService", "GetThread"),
    Route("POST", "/v1/threads/{thread_id}", "ThreadService", "UpdateThread"),
    Route("DELETE", "/v1/threads/{thread_id}", "ThreadService", "DeleteThread"),
    Route("POST", "/v1/threads/{thread_id}/messages", "MessageService", "CreateMessage"),
    Route("GET", "/v1/threads/{thread_id}/messages", "MessageService", "ListMessages"),
    Route("GET", "/v1/threads/{thread_id}/messages/{message_id}", "MessageService", "GetMessage"),
    Route("POST", "/v1/threads/{thread_id}/messages/{message_id}", "MessageService", "UpdateMessage"),
    Route("DELETE", "/v1/threads/{thread_id}/messages/{message_id}", "MessageService", "DeleteMessage"),
    Route("POST", "/v1/threads/{thread_id}/runs", "RunService", "CreateRun", "CreateRunStream"),
    Route("GET", "/v1/threads/{thread_id}/runs", "RunService", "ListRuns"),
    Route("GET", "/v1/threads/{thread_id}/runs/{run_id}", "RunService", "GetRun"),
    Route("POST", "/v1/threads/{thread_id}/runs/{run_id}", "RunService", "UpdateRun"),
    Route("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel", "RunService", "CancelRun"),
    Route(
        "POST",
        "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
        "RunService",
        "SubmitToolOutputs",
        "SubmitToolOutputsStream",
    ),
    # assistd's own: re-attach to a run's stream (Last-Event-ID or ?after_sequence=N).
    Route("GET", "/v1/threads/{thread_id}/runs/{run_id}/events", "RunService", "WatchRun", always_stream=True),
    Route("GET", "/v1/threads/{thread_id}/runs/{run_id}/steps", "RunService", "ListRunSteps"),
    Route("GET", "/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "RunService", "GetRunStep"),
    Route("POST", "/v1/containers", "ContainerService", "CreateContainer"),
    Route("GET", "/v1/containers", "ContainerService", "ListContainers"),
    Route("GET", "/v1/containers/{container_id}", "ContainerService", "GetContainer"),
    Route("DELETE", "/v1/containers/{container_id}", "ContainerService", "DeleteContainer"),
    Route("GET", "/v1/containers/{container_id}/files", "ContainerService", "ListContainerFiles"),
    Route("GET", "/v1/containers/{container_id}/files/{file_id}", "ContainerService", "GetContainerFile"),
    Route("DELETE", "/v1/containers/{container_id}/files/{file_id}", "ContainerService", "DeleteContainerFile"),
    # The Conversations API (a conversation is a thread); /v1/responses is edge/responses.py.
    Route("POST", "/v1/conversations", "ConversationService", "CreateConversation"),
    Route("GET", "/v1/conversations/{conversation_id}", "ConversationService", "GetConversation"),
    Route("POST", "/v1/conversations/{conversation_id}", "ConversationService", "UpdateConversation"),
    Route("DELETE", "/v1/conversations/{conversation_id}", "ConversationService", "DeleteConversation"),
    Route("POST", "/v1/conversations/{conversation_id}/items", "ConversationService", "CreateConversationItems"),
    Route("GET", "/v1/conversations/{conversation_id}/items", "ConversationService", "ListConversationItems"),
    Route("GET", "/v1/conversations/{conversation_id}/items/{item_id}", "ConversationService", "GetConversationItem"),
    Route(
        "DELETE", "/v1/conversations/{conversation_id}/items/{item_id}", "ConversationService", "DeleteConversationItem"
    ),
]
