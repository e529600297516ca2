"""ThreadService and MessageService: threads and the messages in them."""

from assistd.v1 import common_pb2, message_pb2, message_pb2_grpc, thread_pb2, thread_pb2_grpc

from service import ids
from service.api.common import apply_mask, list_query, page, unary
from service.errors import ThreadBusy, not_found
from service.retrieval.attachments import attach
from service.retrieval.stores import inline_stores
from service.validation import check_message, check_metadata


def new_message(thread_id: str, params, param: str = "") -> message_pb2.Message:
    """A user- or assistant-written message from NewMessage/CreateMessageRequest fields.

    Raises InvalidArgument naming `param` (e.g. "messages[0].content") when it is malformed.
    """
    check_message(params, param)
    return message_pb2.Message(
        id=ids.new_id("msg_"),
        object="thread.message",
        created_at=ids.now(),
        thread_id=thread_id,
        status=message_pb2.MESSAGE_STATUS_COMPLETED,
        completed_at=ids.now(),
        role=params.role,
        content=params.content,
        attachments=params.attachments,
        metadata=params.metadata,
    )


async def thread_files(repo, tenant, thread, messages):
    """What a new thread needs stored besides itself and its messages for file_search: inline
    vector stores from its tool_resources, then its messages' attachments. Returns
    (objects, files to ingest); the thread object itself is updated in place."""
    objects, to_ingest = await inline_stores(repo, tenant, thread.tool_resources)
    attached, attached_files = await attach(repo, tenant, thread, messages)
    return objects + [o for o in attached if o is not thread], to_ingest + attached_files


def new_thread(params) -> tuple[thread_pb2.Thread, list[message_pb2.Message]]:
    """A thread and its initial messages from CreateThreadRequest/ThreadParams, validated whole."""
    check_metadata(params.metadata)
    thread = thread_pb2.Thread(
        id=ids.new_id("thread_"), object="thread", created_at=ids.now(), metadata=params.metadata
    )
    if params.HasField("tool_resources"):
        thread.tool_resources.CopyFrom(params.tool_resources)
    messages = [new_message(thread.id, m, f"messages[{i}]") for i, m in enumerate(params.messages)]
    return thread, messages


class ThreadService(thread_pb2_grpc.ThreadServiceServicer):
    def __init__(self, auth, repo, engine, ingestor):
        self.auth = auth
        self.repo = repo
        self.engine = engine
        self.ingestor = ingestor

    @unary
    async def CreateThread(self, tenant, request, context):
        thread, messages = new_thread(request)
        objects, to_ingest = await thread_files(self.repo, tenant, thread, messages)
        await self.repo.put(tenant, thread, *messages, *objects)
        self.ingestor.submit_all(tenant, to_ingest)
        return thread_pb2.CreateThreadResponse(thread=thread)

    @unary
    async def GetThread(self, tenant, request, context):
        thread = await self.repo.require(tenant, thread_pb2.Thread, request.thread_id)
        return thread_pb2.GetThreadResponse(thread=thread)

    @unary
    async def UpdateThread(self, tenant, request, context):
        thread = await self.repo.require(tenant, thread_pb2.Thread, request.thread_id)
        check_metadata(request.thread.metadata)
        apply_mask(thread, request.thread, request.update_mask.paths)
        objects, to_ingest = await inline_stores(self.repo, tenant, thread.tool_resources)
        await self.repo.put(tenant, *objects, thread)
        self.ingestor.submit_all(tenant, to_ingest)
        return thread_pb2.UpdateThreadResponse(thread=thread)

    @unary
    async def DeleteThread(self, tenant, request, context):
        active = await self.repo.store.active_run(tenant, request.thread_id)
        if active is not None:
            raise ThreadBusy(f"Cannot delete thread {request.thread_id} while run {active} is active.")
        if not await self.repo.store.delete_thread(tenant, request.thread_id):
            raise not_found("thread", request.thread_id)
        await self.engine.thread_deleted(tenant, request.thread_id)
        status = common_pb2.DeletionStatus(id=request.thread_id, object="thread.deleted", deleted=True)
        return thread_pb2.DeleteThreadResponse(status=status)


class MessageService(message_pb2_grpc.MessageServiceServicer):
    def __init__(self, auth, repo, ingestor):
        self.auth = auth
        self.repo = repo
        self.ingestor = ingestor

    @unary
    async def CreateMessage(self, tenant, request, context):
        thread = await self.repo.require(tenant, thread_pb2.Thread, request.thread_id)
        message = new_message(request.thread_id, request)
        active = await self.repo.store.active_run(tenant, request.thread_id)
        if active is not None:
            raise ThreadBusy(f"Can't add messages to {request.thread_id} while a run {active} is active.")
        objects, to_ingest = await attach(self.repo, tenant, thread, [message])
        await self.repo.put(tenant, message, *objects)
        self.ingestor.submit_all(tenant, to_ingest)
        return message_pb2.CreateMessageResponse(message=message)

    @unary
    async def GetMessage(self, tenant, request, context):
        message = await self.repo.require(tenant, message_pb2.Message, request.message_id, request.thread_id)
        return message_pb2.GetMessageResponse(message=message)

    @unary
    async def UpdateMessage(self, tenant, request, context):
        message = await self.repo.require(tenant, message_pb2.Message, request.message_id, request.thread_id)
        check_metadata(request.message.metadata)
        apply_mask(message, request.message, request.update_mask.paths)
        await self.repo.put(tenant, message)
        return message_pb2.UpdateMessageResponse(message=message)

    @unary
    async def DeleteMessage(self, tenant, request, context):
        if not await self.repo.delete(tenant, message_pb2.Message, request.message_id, request.thread_id):
            raise not_found("message", request.message_id)
        status = common_pb2.DeletionStatus(id=request.message_id, object="thread.message.deleted", deleted=True)
        return message_pb2.DeleteMessageResponse(status=status)

    @unary
    async def ListMessages(self, tenant, request, context):
        query = list_query(request)
        await self.repo.require(tenant, thread_pb2.Thread, request.thread_id)
        items, has_more = await self.repo.list_page(
            tenant, message_pb2.Message, request.thread_id, query, request.run_id
        )
        return page(message_pb2.ListMessagesResponse(), items, has_more)
