"""ConversationService: OpenAI's Conversations API on threads. A conversation is a thread and
its items are the thread's messages, so both APIs see the same conversation."""

from assistd.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc, message_pb2, response_item_pb2, thread_pb2

from service import ids
from service.api.common import list_query, unary
from service.errors import InvalidArgument, NotFound, ThreadBusy
from service.protojson import struct_to_python
from service.responses import request as requests
from service.validation import check_metadata

I = response_item_pb2  # noqa: E741
_STATUS = {
    message_pb2.MESSAGE_STATUS_IN_PROGRESS: I.RESPONSE_ITEM_STATUS_IN_PROGRESS,
    message_pb2.MESSAGE_STATUS_INCOMPLETE: I.RESPONSE_ITEM_STATUS_INCOMPLETE,
}
MAX_ITEMS = 20  # per create call, as OpenAI allows


def message_item(message: message_pb2.Message) -> response_item_pb2.ResponseItem:
    """A thread message as a conversation item."""
    assistant = message.role == message_pb2.MESSAGE_ROLE_ASSISTANT
    item = I.ResponseItem()
    typed = item.message
    typed.id = message.id
    typed.status = _STATUS.get(message.status, I.RESPONSE_ITEM_STATUS_COMPLETED)
    typed.role = "assistant" if assistant else "user"
    for part in message.content:
        kind = part.WhichOneof("kind")
        if kind == "text" and assistant:
            typed.content.add().output_text.text = part.text.value
        elif kind == "text":
            typed.content.add().input_text.text = part.text.value
        elif kind == "image_url":
            typed.content.add().input_image.CopyFrom(I.ResponseInputImage(image_url=part.image_url.url, detail="auto"))
        elif kind == "refusal":
            typed.content.add().refusal.refusal = part.refusal
    return item


def _conversation(thread: thread_pb2.Thread) -> conversation_pb2.Conversation:
    return conversation_pb2.Conversation(
        id=thread.id, object="conversation", created_at=thread.created_at, metadata=thread.metadata
    )


def _messages(thread_id: str, items, param: str = "items") -> list[message_pb2.Message]:
    """Conversation items as thread messages (user and assistant messages only, so far)."""
    if len(items) > MAX_ITEMS:
        raise InvalidArgument(f"Invalid '{param}': at most {MAX_ITEMS} items can be added at once.", param=param)
    request = requests.parse_items([struct_to_python(item) for item in items], param)
    if request.tool_outputs or request.calls or request.system_text or request.files:
        raise InvalidArgument(
            f"Invalid '{param}': conversations hold user and assistant messages (text and images) only, so far.",
            param=param,
        )
    return requests.new_messages(request, thread_id)


class ConversationService(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, auth, repo):
        self.auth = auth
        self.repo = repo

    async def _thread(self, tenant: str, conversation_id: str) -> thread_pb2.Thread:
        thread = await self.repo.get(tenant, thread_pb2.Thread, conversation_id)
        if thread is None:
            raise NotFound(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return thread

    @unary
    async def CreateConversation(self, tenant, request, context):
        check_metadata(request.metadata)
        thread = thread_pb2.Thread(
            id=ids.new_id("conv_"), object="thread", created_at=ids.now(), metadata=request.metadata
        )
        messages = _messages(thread.id, request.items)
        await self.repo.put(tenant, thread, *messages)
        return conversation_pb2.CreateConversationResponse(conversation=_conversation(thread))

    @unary
    async def GetConversation(self, tenant, request, context):
        thread = await self._thread(tenant, request.conversation_id)
        return conversation_pb2.GetConversationResponse(conversation=_conversation(thread))

    @unary
    async def UpdateConversation(self, tenant, request, context):
        check_metadata(request.metadata)
        thread = await self._thread(tenant, request.conversation_id)
        thread.metadata.clear()
        thread.metadata.update(request.metadata)
        await self.repo.put(tenant, thread)
        return conversation_pb2.UpdateConversationResponse(conversation=_conversation(thread))

    @unary
    async def DeleteConversation(self, tenant, request, context):
        if not await self.repo.store.delete_thread(tenant, request.conversation_id):
            raise NotFound(f"Conversation with id '{request.conversation_id}' not found.", param="conversation_id")
        status = common_pb2.DeletionStatus(id=request.conversation_id, object="conversation.deleted", deleted=True)
        return conversation_pb2.DeleteConversationResponse(status=status)

    @unary
    async def CreateConversationItems(self, tenant, request, context):
        thread = await self._thread(tenant, request.conversation_id)
        messages = _messages(thread.id, request.items)
        active = await self.repo.store.active_run(tenant, thread.id)
        if active is not None:
            raise ThreadBusy(f"Conversation {thread.id} has a response in progress ({active}).")
        await self.repo.put(tenant, *messages)
        response = conversation_pb2.CreateConversationItemsResponse(
            data=[message_item(m) for m in messages], has_more=False
        )
        if messages:
            response.first_id, response.last_id = messages[0].id, messages[-1].id
        return response

    @unary
    async def ListConversationItems(self, tenant, request, context):
        thread = await self._thread(tenant, request.conversation_id)
        messages, has_more = await self.repo.list_page(tenant, message_pb2.Message, thread.id, list_query(request))
        response = conversation_pb2.ListConversationItemsResponse(
            data=[message_item(m) for m in messages], has_more=has_more
        )
        if messages:
            response.first_id, response.last_id = messages[0].id, messages[-1].id
        return response

    async def _item(self, tenant: str, conversation_id: str, item_id: str) -> message_pb2.Message:
        await self._thread(tenant, conversation_id)
        message = await self.repo.get(tenant, message_pb2.Message, item_id, conversation_id)
        if message is None:
            raise NotFound(f"Item with id '{item_id}' not found.", param="item_id")
        return message

    @unary
    async def GetConversationItem(self, tenant, request, context):
        message = await self._item(tenant, request.conversation_id, request.item_id)
        return conversation_pb2.GetConversationItemResponse(item=message_item(message))

    @unary
    async def DeleteConversationItem(self, tenant, request, context):
        await self._item(tenant, request.conversation_id, request.item_id)
        await self.repo.delete(tenant, message_pb2.Message, request.item_id, request.conversation_id)
        thread = await self._thread(tenant, request.conversation_id)
        return conversation_pb2.DeleteConversationItemResponse(conversation=_conversation(thread))
