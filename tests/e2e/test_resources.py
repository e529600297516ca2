"""Assistants, threads and messages: CRUD and cursor pagination as OpenAI pages them."""

import openai
import pytest

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def test_assistant_crud(client):
    created = client.beta.assistants.create(
        model=MODEL,
        name="crud",
        description="d",
        instructions="i",
        temperature=0.5,
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
        metadata={"team": "a"},
        response_format={"type": "json_object"},
    )
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert created.tools[0].function.parameters["required"] == ["city"]
    assert created.response_format.type == "json_object"
    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created
    updated = client.beta.assistants.update(created.id, name="renamed", tools=[], metadata={"team": "b"})
    assert updated.name == "renamed" and updated.tools == [] and updated.metadata == {"team": "b"}
    assert updated.instructions == "i" and updated.temperature == 0.5
    deleted = client.beta.assistants.delete(created.id)
    assert deleted.deleted and deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)


def test_thread_and_message_crud(client):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "one", "metadata": {"n": "1"}}], metadata={"user": "x"}
    )
    assert thread.id.startswith("thread_") and thread.metadata == {"user": "x"}
    assert client.beta.threads.update(thread.id, metadata={"user": "y"}).metadata == {"user": "y"}
    message = client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content=[{"type": "text", "text": "two"}]
    )
    assert message.content[0].text.value == "two" and message.content[0].text.annotations == []
    assert message.status == "completed" and message.assistant_id is None and message.run_id is None
    updated = client.beta.threads.messages.update(message_id=message.id, thread_id=thread.id, metadata={"k": "v"})
    assert updated.metadata == {"k": "v"}
    assert client.beta.threads.messages.retrieve(message_id=message.id, thread_id=thread.id) == updated
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread_id=thread.id, order="asc")]
    assert texts == ["one", "two"]
    assert client.beta.threads.messages.delete(message_id=message.id, thread_id=thread.id).deleted
    assert len(client.beta.threads.messages.list(thread_id=thread.id).data) == 1
    assert client.beta.threads.delete(thread.id).object == "thread.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread_id=thread.id)


def test_pagination_after_before_and_order_across_pages(client):
    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread_id=thread.id, role="user", content=f"m{i}").id for i in range(7)]
    assert ids == sorted(ids)  # ids sort by creation time

    first = client.beta.threads.messages.list(thread_id=thread.id, limit=3, order="asc")
    assert [m.id for m in first.data] == ids[:3] and first.has_more
    assert first.first_id == ids[0] and first.last_id == ids[2]
    second = client.beta.threads.messages.list(thread_id=thread.id, limit=3, order="asc", after=ids[2])
    assert [m.id for m in second.data] == ids[3:6] and second.has_more
    third = client.beta.threads.messages.list(thread_id=thread.id, limit=3, order="asc", after=ids[5])
    assert [m.id for m in third.data] == ids[6:] and not third.has_more

    # the SDK's auto-pagination walks every page with `after`
    assert [m.id for m in client.beta.threads.messages.list(thread_id=thread.id, limit=2, order="asc")] == ids
    assert [m.id for m in client.beta.threads.messages.list(thread_id=thread.id, limit=2)] == ids[::-1]  # default desc

    desc = client.beta.threads.messages.list(thread_id=thread.id, limit=2, order="desc", after=ids[5])
    assert [m.id for m in desc.data] == [ids[4], ids[3]] and desc.has_more
    before = client.beta.threads.messages.list(thread_id=thread.id, limit=2, order="asc", before=ids[5])
    assert [m.id for m in before.data] == [ids[3], ids[4]] and before.has_more
    window = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=ids[1], before=ids[5])
    assert [m.id for m in window.data] == ids[2:5] and not window.has_more
    empty = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=ids[-1])
    assert empty.data == [] and not empty.has_more


def test_assistants_list_pages(client):
    made = [client.beta.assistants.create(model=MODEL, name=f"page-{i}").id for i in range(5)]
    listed = [a.id for a in client.beta.assistants.list(limit=2, order="asc") if a.id in made]
    assert listed == made
