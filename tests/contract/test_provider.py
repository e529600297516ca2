"""One contract for every provider adapter: the lean OpenAI-compatible reader and litellm, each
driven through the router against the scripted OpenAI-compatible provider."""

import asyncio

import pytest

from service.llm import ChatRequest, InvalidPrompt, ProviderUnavailable, RateLimited
from service.llm.router import ModelRouter
from tests.conftest import unique
from tests.scripted_llm import DIMENSIONS, embed

MODEL = "openai/scripted"
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture(params=["lean", "litellm"])
async def router(request, provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    adapter = ModelRouter(lean=request.param == "lean")
    assert (adapter.endpoint(MODEL) is not None) == (request.param == "lean")
    yield adapter
    await adapter.close()


def _ask(text: str, **options) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[{"role": "user", "content": text}], **options)


async def _all(router, request):
    return [delta async for delta in router.stream(request)]


async def test_text_streams_in_pieces_with_finish_reason_and_usage(router):
    deltas = await _all(router, _ask("[reply:hello there world]"))
    assert "".join(d.text for d in deltas) == "hello there world"
    assert len([d for d in deltas if d.text]) == 6  # the provider's 3-character chunks, not one blob
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    usage = [d for d in deltas if d.prompt_tokens is not None]
    assert len(usage) == 1 and usage[0].prompt_tokens > 0 and usage[0].completion_tokens == 6


async def test_parallel_tool_calls_arrive_as_fragments_by_index(router):
    request = _ask('[call:get_weather:{"city": "Paris"}][call:get_weather:{"city": "Oslo"}]', tools=[WEATHER])
    deltas = await _all(router, request)
    calls: dict[int, dict] = {}
    for fragment in (f for d in deltas for f in d.tool_calls):
        call = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
        call["id"] = call["id"] or fragment.id
        call["name"] += fragment.name or ""
        call["arguments"] += fragment.arguments or ""
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_weather", '{"city": "Oslo"}'),
    ]
    assert all(c["id"] for c in calls.values())
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(router):
    deltas = await _all(router, _ask("[chunks:50]", max_tokens=5))
    assert "".join(d.text for d in deltas) == "w0 w1 w2 w3 w4 "
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]


@pytest.mark.parametrize(
    "status, error, code",
    [
        (429, RateLimited, "rate_limit_exceeded"),
        (400, InvalidPrompt, "invalid_prompt"),
        (500, ProviderUnavailable, "server_error"),
    ],
)
async def test_provider_errors_become_the_ports_typed_errors(router, status, error, code):
    with pytest.raises(error) as info:
        await _all(router, _ask(f"[error:{status}]"))
    assert info.value.code == code and "scripted failure" in info.value.message


async def test_an_unreachable_provider_is_unavailable(router, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    with pytest.raises(ProviderUnavailable):
        await _all(router, _ask("hello"))


async def test_closing_the_stream_early_hangs_up_on_the_provider(router, provider):
    marker = unique("close-early")
    stream = router.stream(_ask(f"{marker} [chunks:100][slow:0.02]"))
    async for delta in stream:
        if delta.text:
            break
    await stream.aclose()
    for _ in range(200):  # the provider notices the closed connection on its next write
        if provider.was_cut_off(marker):
            break
        await asyncio.sleep(0.05)
    assert provider.was_cut_off(marker)


async def test_prompt_tokens_are_counted(router):
    short = await router.count_tokens(MODEL, [{"role": "user", "content": "hi"}])
    long = await router.count_tokens(MODEL, [{"role": "user", "content": "hello there " * 50}])
    assert 0 < short < long and 90 <= long - short <= 120


async def test_embeddings_come_back_in_input_order(router):
    texts = ["a car on the road", "a doctor at work", "a vehicle"]
    vectors = await router.embed("openai/scripted-embed", texts)
    assert [len(v) for v in vectors] == [DIMENSIONS] * 3
    assert vectors == [embed(text) for text in texts]
