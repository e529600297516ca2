"""The Responses API through the real openai SDK: create, retrieve, delete, streaming and its
event order, chaining with previous_response_id, store=False, and function calls."""

import grpc
import httpx
import openai
import pydantic
import pytest
from assistd.v1 import response_item_pb2, response_pb2, response_pb2_grpc
from google.protobuf import struct_pb2

from tests.conftest import MODEL, sse_frames, wait_for

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


def test_options_sent_as_null_take_their_defaults(client):
    # schemathesis found a response echoing parallel_tool_calls null, which the SDK types as a boolean
    response = client.responses.create(model=MODEL, input="[reply:ok]", parallel_tool_calls=None)
    assert response.parallel_tool_calls is True
    assert client.responses.retrieve(response.id).parallel_tool_calls is True
    # the same rule for every field: null is not given
    nulls = ["tool_choice", "tools", "temperature", "top_p", "truncation", "text", "reasoning", "metadata", "store"]
    response = client.responses.create(model=MODEL, input="[reply:ok]", extra_body=dict.fromkeys(nulls))
    assert response.status == "completed" and response.store is True
    assert (response.tool_choice, response.tools, response.temperature, response.top_p) == ("auto", [], 1.0, 1.0)
    assert (response.truncation, response.text.format.type, response.metadata) == ("disabled", "text", {})
    assert client.responses.retrieve(response.id).tool_choice == "auto"


def test_create_with_items_sends_the_conversation_and_instructions(client, provider, marker):
    response = client.responses.create(
        model=MODEL,
        instructions="Answer in French.",
        input=[
            {"role": "developer", "content": "Be polite."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": f"{marker} again"},
                    {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
                ],
            },
        ],
    )
    assert response.status == "completed" and response.output_text == f"You said: {marker} again"
    sent = provider.requests_with(marker)[-1]["messages"]
    assert sent == [
        {"role": "system", "content": "Answer in French.\n\nBe polite."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"{marker} again"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
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
    for item, param in [
        ({"type": {}, "role": "user", "content": "x"}, "input[0].type"),
        ({"role": "user", "content": [{"type": ["input_text"], "text": "x"}]}, "input[0].content[0].type"),
    ]:
        with pytest.raises(openai.BadRequestError) as error:
            client.responses.create(model=MODEL, input=[item])  # type: ignore[list-item]
        assert error.value.body["param"] == param and error.value.body["code"] == "invalid_type"
    reply = httpx.get(  # past the int32 the limit travels in (schemathesis found this 500)
        f"{server.base_url}/responses/resp_x/input_items?limit=-66805487355",
        headers={"Authorization": "Bearer test-key"},
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "limit"
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


def test_previous_response_id_chains_three_turns_without_inheriting_instructions(client, provider, marker):
    first = client.responses.create(model=MODEL, input="[reply:One.] first", instructions="Count.")
    second = client.responses.create(model=MODEL, input="second", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.instructions is None
    third = client.responses.create(
        model=MODEL, input=f"{marker} third", previous_response_id=second.id, instructions="Be terse."
    )
    assert third.output_text == f"You said: {marker} third"
    assert provider.requests_with(marker)[-1]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "[reply:One.] first"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "You said: second"},
        {"role": "user", "content": f"{marker} third"},
    ]
    # Following an older response branches: the later turns are not in its context.
    branch = client.responses.create(model=MODEL, input=f"{marker} branch", previous_response_id=first.id)
    assert branch.status == "completed"
    assert provider.requests_with(f"{marker} branch")[-1]["messages"] == [
        {"role": "user", "content": "[reply:One.] first"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": f"{marker} branch"},
    ]
    # ... and the original line goes on where it was.
    fourth = client.responses.create(model=MODEL, input=f"{marker} fourth", previous_response_id=third.id)
    assert fourth.status == "completed"
    sent = provider.requests_with(f"{marker} fourth")[-1]["messages"]
    assert [m["content"] for m in sent[-3:]] == [f"{marker} third", f"You said: {marker} third", f"{marker} fourth"]
    assert len(sent) == 7


def test_store_false_is_neither_retrievable_nor_chainable(client):
    response = client.responses.create(model=MODEL, input="[reply:secret]", store=False)
    assert response.output_text == "secret" and response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="more", previous_response_id=response.id)
    assert error.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_unknown")
    assert error.value.body["code"] == "previous_response_not_found"


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_function_call_round_trip(client, provider, marker):
    first = client.responses.create(
        model=MODEL, input=f'{marker} [call:get_weather:{{"city":"Paris"}}]', tools=[WEATHER]
    )
    assert first.status == "completed" and first.output_text == ""
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert call.arguments == '{"city":"Paris"}' and call.id.startswith("fc_") and call.call_id.startswith("call_")
    assert first.tools[0].name == "get_weather"
    # Outputs for calls that are not pending, or no outputs at all, are refused.
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
    assert error.value.body["param"] == "input[0].call_id"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, previous_response_id=first.id, input="no outputs")
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.status == "completed" and second.output_text == "Results: sunny"
    assert [item.type for item in second.output] == ["message"]
    sent = provider.requests_with(marker)[-1]["messages"]
    assert sent[-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"},
    ]
    (output,) = client.responses.input_items.list(second.id).data
    assert output.type == "function_call_output" and output.call_id == call.call_id and output.output == "sunny"
    assert client.responses.retrieve(first.id).output[0].call_id == call.call_id
    third = client.responses.create(model=MODEL, previous_response_id=second.id, input=f"{marker} thanks")
    assert third.output_text == f"You said: {marker} thanks"


def test_function_call_stream_events_in_order(client, marker):
    with client.responses.stream(
        model=MODEL, input=f'{marker} [call:get_weather:{{"city":"Lisbon, Portugal"}}]', tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _collapse([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1 and deltas[-1].snapshot == '{"city":"Lisbon, Portugal"}'
    (call,) = final.output
    assert call.type == "function_call" and call.arguments == '{"city":"Lisbon, Portugal"}'
    with client.responses.stream(
        model=MODEL,
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        answer = stream.get_final_response()
    assert text == "Results: rainy" == answer.output_text


def test_background_response_is_queued_then_completes(client):
    response = client.responses.create(model=MODEL, input="[reply:later]", background=True)
    assert response.status == "queued" and response.background is True
    done = wait_for(lambda: (r := client.responses.retrieve(response.id)).status == "completed" and r)
    assert done.output_text == "later"


def test_background_stream_resumed_after_event_k_gets_every_event_once_in_order(client, provider, marker):
    gate = f"{marker}-gate"
    stream = client.responses.create(
        model=MODEL, input=f"{marker} [chunks:12][gate:{gate}:4]", background=True, stream=True
    )
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the client drops; the response goes on
    k = seen[-1].sequence_number
    response_id = seen[0].response.id
    wait_for(lambda: provider.is_held(gate))
    provider.release(gate)
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=k))
    events = seen + resumed
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.queued"
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(f"w{i} " for i in range(12)) == events[-1].response.output_text
    # The whole stream again, after the end, is the same events.
    replay = list(client.responses.retrieve(response_id, stream=True))
    assert [e.model_dump() for e in replay] == [e.model_dump() for e in events]


def test_cancel_a_background_response(client, provider, marker):
    gate = f"{marker}-gate"
    response = client.responses.create(model=MODEL, input=f"{marker} [chunks:9][gate:{gate}:3]", background=True)
    wait_for(lambda: provider.is_held(gate))
    cancelled = client.responses.cancel(response.id)
    provider.release(gate)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(response.id).status == "cancelled"
    again = client.responses.cancel(response.id)  # cancelling an ended response changes nothing
    assert again.status == "cancelled"
    foreground = client.responses.create(model=MODEL, input="[reply:done]")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(foreground.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")


def test_input_items_pages(client):
    response = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": f"item {i}"} for i in range(5)]
        + [{"role": "user", "content": "[reply:ok]"}],
    )
    newest_first = client.responses.input_items.list(response.id, limit=4)
    assert [i.content[0].text for i in newest_first.data] == ["[reply:ok]", "item 4", "item 3", "item 2"]
    assert newest_first.has_more is True
    every = [i.content[0].text for i in client.responses.input_items.list(response.id, limit=2, order="asc")]
    assert every == [f"item {i}" for i in range(5)] + ["[reply:ok]"]


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_parse_with_a_pydantic_text_format(client, provider, marker):
    parsed = client.responses.parse(
        model=MODEL, input=f'{marker} [reply:{{"city":"Paris","celsius":21}}]', text_format=Weather
    )
    assert parsed.output_parsed == Weather(city="Paris", celsius=21)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Weather"
    sent = provider.requests_with(marker)[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Weather"
    assert sent["json_schema"]["schema"]["properties"]["celsius"] == {"title": "Celsius", "type": "integer"}
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", text={"format": {"type": "yaml"}})  # type: ignore[typeddict-item]
    assert error.value.body["param"] == "text.format.type"


def test_file_search_with_vector_store_ids_cites_the_file(client):
    vs = client.vector_stores.create(name="animals")
    zebras = client.vector_stores.files.upload_and_poll(
        vector_store_id=vs.id,
        file=("zebras.md", b"# Zebras\nZebras have black and white stripes.\n"),
        poll_interval_ms=50,
    )
    client.vector_stores.files.upload_and_poll(
        vector_store_id=vs.id, file=("etna.txt", b"Mount Etna is a volcano in Sicily.\n"), poll_interval_ms=50
    )
    tools = [{"type": "file_search", "vector_store_ids": [vs.id], "max_num_results": 1}]
    with client.responses.stream(
        model=MODEL, input='What do zebras have? [call:file_search:{"queries": ["zebra stripes"]}]', tools=tools
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _collapse([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    search, message = final.output
    assert search.type == "file_search_call" and search.id.startswith("fs_") and search.status == "completed"
    assert "【0†zebras.md】" in final.output_text
    (citation,) = message.content[0].annotations
    assert citation.type == "file_citation" and citation.file_id == zebras.id and citation.filename == "zebras.md"
    assert search.results is None  # only on request
    detailed = client.responses.create(
        model=MODEL,
        input='What do zebras have? [call:file_search:{"queries": ["zebra stripes"]}]',
        tools=tools,
        include=["file_search_call.results"],
    )
    (result,) = detailed.output[0].results
    assert result.file_id == zebras.id and result.filename == "zebras.md" and "black and white" in result.text
    assert client.responses.retrieve(detailed.id).output[0].results[0].text == result.text
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model=MODEL, input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_missing"]}]
        )
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", include=["nonsense"])  # type: ignore[list-item]
    assert error.value.body["param"] == "include[0]"
    both = 'zebras? [call:file_search:{"queries": ["zebra stripes volcano Sicily"]}]'
    every = [{"type": "file_search", "vector_store_ids": [vs.id]}]
    strict = [{**every[0], "ranking_options": {"ranker": "auto", "score_threshold": 1.0}}]
    found = client.responses.create(model=MODEL, input=both, tools=every, include=["file_search_call.results"])
    assert len(found.output[0].results) == 2
    best = client.responses.create(model=MODEL, input=both, tools=strict, include=["file_search_call.results"])
    assert len(best.output[0].results) == 1  # only the best hit scores 1


def test_grpc_response_stream_and_watch_from_a_sequence_number(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = response_pb2_grpc.ResponseServiceStub(channel)
        body = struct_pb2.Struct()
        body.update({"model": MODEL, "input": "[reply:over gRPC]"})
        events = [r.event for r in stub.CreateResponseStream(response_pb2.CreateResponseStreamRequest(body=body))]
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        # typed events: each payload read straight from the stub, no JSON
        response_id = events[0].lifecycle.response.id
        deltas = [e.text_delta for e in events if e.type == "response.output_text.delta"]
        assert deltas and all(e.WhichOneof("payload") == "text_delta" for e in events if e.type.endswith("text.delta"))
        assert "".join(d.delta for d in deltas) == "over gRPC"
        added = next(e.output_item for e in events if e.type == "response.output_item.added")
        assert added.item.WhichOneof("item") == "message" and all(d.item_id == added.item.message.id for d in deltas)
        completed = events[-1].lifecycle.response
        assert completed.status == response_pb2.RESPONSE_STATUS_COMPLETED and completed.id == response_id
        (message,) = completed.output
        assert message.message.status == response_item_pb2.RESPONSE_ITEM_STATUS_COMPLETED
        assert message.message.content[0].output_text.text == "over gRPC"
        assert completed.usage.total_tokens == completed.usage.input_tokens + completed.usage.output_tokens > 0
        assert not completed.HasField("error") and completed.HasField("completed_at")
        watched = [
            r.event
            for r in stub.WatchResponse(response_pb2.WatchResponseRequest(response_id=response_id, starting_after=3))
        ]
        assert watched == events[4:]
        got = stub.GetResponse(response_pb2.GetResponseRequest(response_id=response_id)).response
        assert got == completed and got.output[0].message.content[0].output_text.text == "over gRPC"
        with pytest.raises(grpc.RpcError) as error:
            stub.GetResponse(response_pb2.GetResponseRequest(response_id="resp_missing"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_input_tokens_count_the_prompt_with_its_context(client):
    alone = client.responses.input_tokens.count(model=MODEL, input="How many tokens is this sentence?")
    assert alone.object == "response.input_tokens" and alone.input_tokens > 0
    first = client.responses.create(model=MODEL, input="[reply:A fairly long first answer with many words in it.]")
    chained = client.responses.input_tokens.count(
        model=MODEL, input="How many tokens is this sentence?", previous_response_id=first.id
    )
    assert chained.input_tokens > alone.input_tokens
    with pytest.raises(openai.BadRequestError):
        client.responses.input_tokens.count(model=MODEL, input=3)  # type: ignore[arg-type]


def test_reasoning_effort_reaches_the_model(client, provider, marker):
    response = client.responses.create(model=MODEL, input=marker, reasoning={"effort": "low"})
    assert response.reasoning.effort == "low"
    assert provider.requests_with(marker)[-1]["reasoning_effort"] == "low"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", reasoning={"effort": "extreme"})  # type: ignore[typeddict-item]
    assert error.value.body["param"] == "reasoning.effort"


def test_a_failed_model_call_fails_the_response(client):
    response = client.responses.create(model=MODEL, input="[error:400]")
    assert response.status == "failed" and response.error.message
    events = list(client.responses.create(model=MODEL, input="[error:400]", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.error.code


def test_a_background_stream_dropped_at_its_first_event_still_completes(client):
    stream = client.responses.create(model=MODEL, input="[chunks:30][slow:0.01]", background=True, stream=True)
    first = next(iter(stream))
    stream.close()
    assert first.type == "response.created"
    done = wait_for(lambda: (r := client.responses.retrieve(first.response.id)).status == "completed" and r)
    assert done.output_text == "".join(f"w{i} " for i in range(30))


def test_function_calls_given_back_as_history_without_previous_response_id(client, provider, marker):
    """OpenAI's manual-history pattern: the output items go back into `input`, with the outputs."""
    history: list = [{"role": "user", "content": f'{marker} [call:get_weather:{{"city":"Oslo"}}]'}]
    called = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False)
    history += [item.model_dump(exclude_none=True) for item in called.output]
    (call,) = [item for item in called.output if item.type == "function_call"]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "cold"})
    answer = client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    assert answer.output_text == "Results: cold"
    assert provider.requests_with(marker)[-1]["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "cold"},
    ]
    items = client.responses.input_items.list(answer.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=history[:-1], tools=[WEATHER])  # a call with no output
    assert error.value.body["param"] == "input[1]"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=[history[-1]], tools=[WEATHER])  # an output with no call
    assert error.value.body["param"] == "input[0].call_id"
