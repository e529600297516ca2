"""The Conversations API through the real openai SDK, and responses in a conversation: a
conversation is a thread, so an Assistants thread continues through Responses and back."""

import grpc
import openai
import pytest
from assistd.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc, response_item_pb2
from google.protobuf import struct_pb2

from tests.conftest import MODEL, wait_for

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def test_conversation_crud_and_items(client):
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Hello"}], metadata={"topic": "demo"}
    )
    assert conversation.id.startswith("conv_") and conversation.object == "conversation"
    assert conversation.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conversation.id).created_at == conversation.created_at
    updated = client.conversations.update(conversation.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}
    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "assistant", "content": "Hi!"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "How are you?"}]},
        ],
    )
    assert [item.role for item in added.data] == ["assistant", "user"]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [(i.role, i.content[0].type, i.content[0].text) for i in items] == [
        ("user", "input_text", "Hello"),
        ("assistant", "output_text", "Hi!"),
        ("user", "input_text", "How are you?"),
    ]
    one = client.conversations.items.retrieve(items[1].id, conversation_id=conversation.id)
    assert one.id == items[1].id and one.type == "message"
    client.conversations.items.delete(items[1].id, conversation_id=conversation.id)
    assert len(client.conversations.items.list(conversation.id).data) == 2
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(items[1].id, conversation_id=conversation.id)
    with pytest.raises(openai.BadRequestError) as error:
        client.conversations.items.create(conversation.id, items=[{"type": "message", "role": "robot", "content": "x"}])
    assert error.value.body["param"] == "items[0].role"
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_responses_in_a_conversation_see_and_extend_it(client, provider, marker):
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}]
    )
    first = client.responses.create(model=MODEL, conversation=conversation.id, input="[reply:Hello Ada.]")
    assert first.output_text == "Hello Ada." and first.conversation.id == conversation.id
    second = client.responses.create(model=MODEL, conversation={"id": conversation.id}, input=f"{marker} who am I?")
    assert second.status == "completed"
    assert [m["content"] for m in provider.requests_with(marker)[-1]["messages"]] == [
        "My name is Ada.",
        "[reply:Hello Ada.]",
        "Hello Ada.",
        f"{marker} who am I?",
    ]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.role for i in items] == ["user", "user", "assistant", "user", "assistant"]
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, conversation=conversation.id, previous_response_id=first.id, input="x")
    assert error.value.body["param"] == "conversation"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, conversation="conv_missing", input="x")


def test_an_assistants_thread_continues_through_responses(client, assistant, marker):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:Started with Assistants.]"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    response = client.responses.create(model=MODEL, conversation=thread.id, input=f"[reply:{marker} via Responses]")
    assert response.output_text == f"{marker} via Responses"
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.content[0].text.value for m in messages] == [
        "[reply:Started with Assistants.]",
        "Started with Assistants.",
        f"[reply:{marker} via Responses]",
        f"{marker} via Responses",
    ]


def test_an_assistant_as_the_prompt_gives_model_instructions_and_tools(client, provider, marker):
    assistant = client.beta.assistants.create(
        model=MODEL,
        instructions="You are the weather desk.",
        temperature=0.4,
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    response = client.responses.create(
        prompt={"id": assistant.id}, input=f'{marker} [call:get_weather:{{"city":"Rome"}}]'
    )
    assert response.model == MODEL and response.instructions == "You are the weather desk."
    assert response.prompt.id == assistant.id and response.tools[0].name == "get_weather"
    (call,) = response.output
    assert call.type == "function_call" and call.arguments == '{"city":"Rome"}'
    sent = provider.requests_with(marker)[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You are the weather desk."}
    assert sent["temperature"] == 0.4 and sent["tools"][0]["function"]["name"] == "get_weather"
    answer = client.responses.create(
        prompt={"id": assistant.id},
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "warm"}],
    )
    assert answer.output_text == "Results: warm"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(prompt={"id": "asst_missing"}, input="x")
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(prompt={"id": "pmpt_123"}, input="x")
    assert error.value.body["param"] == "prompt.id"


def test_responses_outlive_their_conversation(client):
    conversation = client.conversations.create()
    response = client.responses.create(model=MODEL, conversation=conversation.id, input="[reply:kept]")
    background = client.responses.create(
        model=MODEL, conversation=conversation.id, input="[reply:kept too]", background=True
    )
    wait_for(lambda: client.responses.retrieve(background.id).status == "completed")
    client.conversations.delete(conversation.id)
    assert client.responses.retrieve(response.id).output_text == "kept"
    assert client.responses.retrieve(background.id).output_text == "kept too"


def test_grpc_conversation_items_are_typed(server):
    """Over gRPC the items a conversation answers with are typed ResponseItems, read from the stub."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = conversation_pb2_grpc.ConversationServiceStub(channel)
        first = struct_pb2.Struct()
        first.update({"type": "message", "role": "user", "content": "Hello over gRPC"})
        created = stub.CreateConversation(conversation_pb2.CreateConversationRequest(items=[first])).conversation
        answer = struct_pb2.Struct()
        answer.update({"type": "message", "role": "assistant", "content": "Hi back"})
        added = stub.CreateConversationItems(
            conversation_pb2.CreateConversationItemsRequest(conversation_id=created.id, items=[answer])
        )
        (reply,) = added.data
        assert reply.WhichOneof("item") == "message" and reply.message.role == "assistant"
        assert reply.message.content[0].output_text.text == "Hi back"
        listed = stub.ListConversationItems(
            conversation_pb2.ListConversationItemsRequest(conversation_id=created.id, order=common_pb2.LIST_ORDER_ASC)
        ).data
        assert [(i.message.role, i.message.content[0].WhichOneof("part")) for i in listed] == [
            ("user", "input_text"),
            ("assistant", "output_text"),
        ]
        assert listed[0].message.content[0].input_text.text == "Hello over gRPC"
        assert listed[0].message.status == response_item_pb2.RESPONSE_ITEM_STATUS_COMPLETED
        one = stub.GetConversationItem(
            conversation_pb2.GetConversationItemRequest(conversation_id=created.id, item_id=reply.message.id)
        ).item
        assert one == reply
