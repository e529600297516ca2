"""Built-in tools in the Responses API through the real openai SDK: `max_tool_calls` (calls past it
are not run, and the tools are no longer offered) and file_search `filters` on file attributes."""

import openai
import pytest

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


@pytest.fixture
def papers(client):
    """A vector store of three papers whose attributes differ (year, venue, open access)."""
    vs = client.vector_stores.create(name="papers")
    files = {}
    for name, text, attributes in [
        ("zebra-2021.md", "Zebra stripes deter biting flies.", {"year": 2021, "venue": "nature", "open": True}),
        ("zebra-2023.md", "Zebra stripes and heat: stripes do not cool.", {"year": 2023, "venue": "science"}),
        ("zebra-2024.md", "Zebra stripes confuse lions at dusk.", {"year": 2024, "venue": "nature", "open": False}),
    ]:
        files[name] = client.vector_stores.files.upload_and_poll(
            vector_store_id=vs.id, file=(name, text.encode()), attributes=attributes, poll_interval_ms=50
        ).id
    return vs.id, files


SEARCH = '[call:file_search:{"queries": ["zebra stripes"]}]'


def _found(client, vs_id: str, filters) -> set[str]:
    """The file names a file_search with these filters found."""
    tool = {"type": "file_search", "vector_store_ids": [vs_id], "filters": filters}
    response = client.responses.create(
        model=MODEL, input=f"Zebras? {SEARCH}", tools=[tool], include=["file_search_call.results"]
    )
    (search, _message) = response.output
    assert search.type == "file_search_call" and response.to_dict()["tools"][0]["filters"] == filters
    return {result.filename for result in search.results or []}


def test_file_search_filters_compare_and_combine_file_attributes(client, papers):
    vs_id, _ = papers
    assert _found(client, vs_id, None) == {"zebra-2021.md", "zebra-2023.md", "zebra-2024.md"}
    assert _found(client, vs_id, {"type": "eq", "key": "venue", "value": "nature"}) == {
        "zebra-2021.md",
        "zebra-2024.md",
    }
    assert _found(client, vs_id, {"type": "gte", "key": "year", "value": 2023}) == {"zebra-2023.md", "zebra-2024.md"}
    assert _found(client, vs_id, {"type": "in", "key": "year", "value": [2021, 2023]}) == {
        "zebra-2021.md",
        "zebra-2023.md",
    }
    both = {
        "type": "and",
        "filters": [{"type": "eq", "key": "venue", "value": "nature"}, {"type": "gt", "key": "year", "value": 2022}],
    }
    assert _found(client, vs_id, both) == {"zebra-2024.md"}
    either = {
        "type": "or",
        "filters": [{"type": "eq", "key": "open", "value": True}, {"type": "eq", "key": "venue", "value": "science"}],
    }
    assert _found(client, vs_id, either) == {"zebra-2021.md", "zebra-2023.md"}
    assert _found(client, vs_id, {"type": "eq", "key": "venue", "value": "cell"}) == set()


@pytest.mark.parametrize(
    "filters, param",
    [
        ("venue", "tools[0].filters"),
        ({"key": "venue", "value": "nature"}, "tools[0].filters.type"),
        ({"type": "like", "key": "venue", "value": "nature"}, "tools[0].filters.type"),
        ({"type": "eq", "value": "nature"}, "tools[0].filters.key"),
        ({"type": "eq", "key": "venue"}, "tools[0].filters.value"),
        ({"type": "eq", "key": "venue", "value": {"a": 1}}, "tools[0].filters.value"),
        ({"type": "eq", "key": "venue", "value": "x", "extra": 1}, "tools[0].filters.extra"),
        ({"type": "and", "filters": []}, "tools[0].filters.filters"),
        ({"type": "or", "filters": "eq"}, "tools[0].filters.filters"),
        ({"type": "and", "filters": [{"type": "eq", "key": 3, "value": 1}]}, "tools[0].filters.filters[0].key"),
    ],
)
def test_wrong_filter_shapes_are_400s_naming_the_param(client, papers, filters, param):
    vs_id, _ = papers
    tool = {"type": "file_search", "vector_store_ids": [vs_id], "filters": filters}
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=f"Zebras? {SEARCH}", tools=[tool])
    assert error.value.body["param"] == param


def test_assistants_file_search_tools_take_no_filters(client):
    """filters is the Responses API's: an assistant's file_search tool refuses it, as OpenAI's does."""
    with pytest.raises(openai.BadRequestError) as error:
        client.beta.assistants.create(
            model=MODEL, tools=[{"type": "file_search", "file_search": {"filters": {"type": "eq"}}}]
        )
    assert error.value.body["param"] == "tools[0].file_search.filters"
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}])
    assert "filters" not in assistant.tools[0].file_search.model_dump(exclude_unset=True)


def test_max_tool_calls_runs_that_many_built_in_calls_and_ignores_the_rest(client, provider, papers, marker):
    vs_id, _ = papers
    tools = [{"type": "file_search", "vector_store_ids": [vs_id]}]

    # two searches a turn, for three turns: six calls when nothing limits them
    def prompt(tag: str) -> str:
        return f'{marker}{tag} [rounds:3] {SEARCH} [call:file_search:{{"queries": ["lions dusk"]}}]'

    unlimited = client.responses.create(model=MODEL, input=prompt("U"), tools=tools)
    assert [item.type for item in unlimited.output] == ["file_search_call"] * 6 + ["message"]
    assert unlimited.max_tool_calls is None

    limited = client.responses.create(model=MODEL, input=prompt("L"), tools=tools, max_tool_calls=3)
    # turn 1 runs both calls, turn 2 only its first (the second is ignored), then no more searching
    assert [item.type for item in limited.output] == ["file_search_call"] * 3 + ["message"]
    assert limited.status == "completed" and limited.output_text
    assert limited.max_tool_calls == 3 and client.responses.retrieve(limited.id).max_tool_calls == 3
    offered = [
        [tool["function"]["name"] for tool in r.get("tools") or []] for r in provider.requests_with(f"{marker}L")
    ]
    assert offered == [["file_search"], ["file_search"], []]  # the last turn was offered nothing

    with client.responses.stream(model=MODEL, input=prompt("S"), tools=tools, max_tool_calls=1) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["file_search_call", "message"]
    assert sum(event.type == "response.file_search_call.completed" for event in events) == 1

    for bad in (0, -1):
        with pytest.raises(openai.BadRequestError) as error:
            client.responses.create(model=MODEL, input="x", tools=tools, max_tool_calls=bad)
        assert error.value.body["param"] == "max_tool_calls"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", tools=tools, max_tool_calls="3")  # type: ignore[arg-type]
    assert error.value.body["param"] == "max_tool_calls"
