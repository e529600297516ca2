"""The Responses API through the real openai SDK: create, retrieve, delete, streaming and its
event order, chaining with previous_response_id, store=False, and function calls."""

import httpx
import openai
import pytest

from tests.conftest import MODEL, sse_frames

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores

TEXT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _collapse(types: list[str]) -> list[str]:
    """Event types with runs of the same delta type folded into one."""
    folded: list[str] = []
    for kind in types:
        if not (folded and folded[-1] == kind and kind.endswith(".delta")):
            folded.append(kind)
    return folded


def test_create_with_string_input_retrieve_and_delete(client):
    response = client.responses.create(
        model=MODEL, input="[reply:Paris is the capital.]", instructions="Be brief.", metadata={"k": "v"}
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == "Paris is the capital."
    assert response.instructions == "Be brief." and response.metadata == {"k": "v"}
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_") and message.status == "completed"
    assert message.role == "assistant" and message.content[0].type == "output_text"
    usage = response.usage
    assert usage.output_tokens > 0 and usage.total_tokens == usage.input_tokens + usage.output_tokens
    again = client.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as error:
        client.responses.retrieve(response.id)
    assert error.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_create_with_items_sends_the_conversation_and_instructions(client, provider, marker):
    response = client.responses.create(
        model=MODEL,
        instructions="Answer in French.",
        input=[
            {"role": "developer", "content": "Be polite."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"{marker} again"}]},
        ],
    )
    assert response.status == "completed" and response.output_text == f"You said: {marker} again"
    sent = provider.requests_with(marker)[-1]["messages"]
    assert sent == [
        {"role": "system", "content": "Answer in French.\n\nBe polite."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": f"{marker} again"},
    ]
    items = client.responses.input_items.list(response.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [
        ("message", "developer"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items[3].content[0].text == f"{marker} again"


def test_bad_requests_get_openai_errors_and_change_nothing(client, server):
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=42)  # type: ignore[arg-type]
    assert error.value.body["param"] == "input" and error.value.body["code"] == "invalid_type"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=[{"role": "robot", "content": "x"}])
    assert error.value.body["param"] == "input[0].role"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(input="x")  # type: ignore[call-overload]
    assert error.value.body["param"] == "model"
    reply = httpx.post(
        f"{server.base_url}/responses",
        json={"model": MODEL, "input": "x", "frobnicate": 1},
        headers={"Authorization": "Bearer test-key"},
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "unknown_parameter"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")


def test_stream_events_in_order_with_increasing_sequence_numbers(client):
    events = list(client.responses.create(model=MODEL, input="[reply:Hello streaming world]", stream=True))
    types = [e.type for e in events]
    assert _collapse(types) == TEXT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Hello streaming world"
    created, completed = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == []
    assert completed.status == "completed" and completed.output_text == "Hello streaming world"
    added = events[2]
    assert added.item.type == "message" and added.item.status == "in_progress" and added.output_index == 0
    assert all(e.item_id == added.item.id for e in events if e.type == "response.output_text.delta")
    assert client.responses.retrieve(completed.id).output_text == "Hello streaming world"


def test_stream_helper_text_deltas_and_final_response(client):
    with client.responses.stream(model=MODEL, input="[reply:Streamed by the helper]") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Streamed by the helper"
    assert final.output_text == "Streamed by the helper" and final.status == "completed"


def test_sse_wire_format_has_event_lines_and_no_done(server):
    with httpx.stream(
        "POST",
        f"{server.base_url}/responses",
        json={"model": MODEL, "input": "[reply:wire]", "stream": True},
        headers={"Authorization": "Bearer test-key"},
    ) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in sse_frames(reply.iter_lines()) if "comment" not in f]
    assert all(set(f) == {"event", "data"} for f in frames)
    assert frames[0]["event"] == "response.created" and frames[-1]["event"] == "response.completed"
    assert not any("[DONE]" in f["data"] for f in frames)
