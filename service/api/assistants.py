"""AssistantService: CRUD and list over assistants."""

from assistd.v1 import assistant_pb2, assistant_pb2_grpc, common_pb2

from service import ids
from service.api.common import apply_mask, list_query, page, unary
from service.errors import missing, not_found
from service.retrieval.stores import inline_stores
from service.validation import check_assistant

# Fields copied as-is from a create/update request onto the assistant.
_OPTIONAL = ("name", "description", "instructions", "temperature", "top_p", "reasoning_effort")


def _apply_given_fields(assistant: assistant_pb2.Assistant, request) -> None:
    """Copies the optional fields a create/update request carries onto the assistant."""
    for field in _OPTIONAL:
        if request.HasField(field):
            setattr(assistant, field, getattr(request, field))
    for field in ("tool_resources", "response_format"):
        if request.HasField(field):
            getattr(assistant, field).CopyFrom(getattr(request, field))


class AssistantService(assistant_pb2_grpc.AssistantServiceServicer):
    def __init__(self, auth, repo, ingestor):
        self.auth = auth
        self.repo = repo
        self.ingestor = ingestor

    async def _save(self, tenant, assistant) -> None:
        """Stores the assistant with the vector stores its tool_resources ask to create."""
        objects, to_ingest = await inline_stores(self.repo, tenant, assistant.tool_resources)
        await self.repo.put(tenant, *objects, assistant)
        self.ingestor.submit_all(tenant, to_ingest)

    @unary
    async def CreateAssistant(self, tenant, request, context):
        if not request.model:
            raise missing("model")
        check_assistant(request)
        assistant = assistant_pb2.Assistant(
            id=ids.new_id("asst_"),
            object="assistant",
            created_at=ids.now(),
            model=request.model,
            tools=request.tools,
            metadata=request.metadata,
        )
        _apply_given_fields(assistant, request)
        await self._save(tenant, assistant)
        return assistant_pb2.CreateAssistantResponse(assistant=assistant)

    @unary
    async def GetAssistant(self, tenant, request, context):
        assistant = await self.repo.require(tenant, assistant_pb2.Assistant, request.assistant_id)
        return assistant_pb2.GetAssistantResponse(assistant=assistant)

    @unary
    async def UpdateAssistant(self, tenant, request, context):
        assistant = await self.repo.require(tenant, assistant_pb2.Assistant, request.assistant_id)
        check_assistant(request.assistant)
        paths = request.update_mask.paths
        if "model" in paths and not request.assistant.model:
            raise missing("model")
        apply_mask(assistant, request.assistant, paths)
        await self._save(tenant, assistant)
        return assistant_pb2.UpdateAssistantResponse(assistant=assistant)

    @unary
    async def DeleteAssistant(self, tenant, request, context):
        if not await self.repo.delete(tenant, assistant_pb2.Assistant, request.assistant_id):
            raise not_found("assistant", request.assistant_id)
        status = common_pb2.DeletionStatus(id=request.assistant_id, object="assistant.deleted", deleted=True)
        return assistant_pb2.DeleteAssistantResponse(status=status)

    @unary
    async def ListAssistants(self, tenant, request, context):
        items, has_more = await self.repo.list_page(tenant, assistant_pb2.Assistant, "", list_query(request))
        return page(assistant_pb2.ListAssistantsResponse(), items, has_more)
