from service.engine.tool_prompt import CallParser, adapt_request
from service.llm import ChatRequest


def test_plain_text_streams_at_once():
    parser = CallParser({"f"})
    assert parser.feed("Hel") == "Hel" and parser.feed("lo {x}") == "lo {x}"
    assert parser.finish() == ("", [])


def test_a_json_call_is_held_back_and_parsed():
    parser = CallParser({"f"})
    assert parser.feed(' {"tool_calls": [{"name": "f", ') == ""
    assert parser.feed('"arguments": {"a": 1}}]}') == ""
    text, calls = parser.finish()
    assert text == "" and [(c.index, c.name, c.arguments) for c in calls] == [(0, "f", '{"a": 1}')]


def test_fenced_calls_and_things_that_are_not_calls():
    parser = CallParser({"f"})
    parser.feed('```json\n{"tool_calls": [{"name": "f", "arguments": "{}"}]}\n```')
    assert parser.finish()[1][0].arguments == "{}"
    for not_a_call in ['{"answer": 42}', '{"tool_calls": [{"name": "unknown"}]}', "{broken"]:
        parser = CallParser({"f"})
        assert parser.feed(not_a_call) == ""
        assert parser.finish() == (not_a_call, [])


def test_adapted_request_has_no_native_tools_and_plain_history():
    request = ChatRequest(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="required",
    )
    adapted = adapt_request(request)
    assert adapted.tools is None and adapted.tool_choice is None
    assert adapted.messages[0]["content"].startswith("Be brief.\n\nYou can call these functions")
    assert "You must call at least one function" in adapted.messages[0]["content"]
    assert adapted.messages[2] == {
        "role": "assistant",
        "content": '{"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}',
    }
    assert adapted.messages[3] == {"role": "user", "content": "Result of f: sunny"}
