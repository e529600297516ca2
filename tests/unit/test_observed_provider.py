"""The one provider wrapper: each model call's first token, usage and end, reported to every observer."""

import pytest

from service.llm import ChatDelta, ChatRequest, RateLimited
from service.llm.observed import ObservedProvider


class _Script:
    """A provider that streams the given deltas, then raises `error` if one is given."""

    def __init__(self, deltas: list[ChatDelta], error: Exception | None = None) -> None:
        self.deltas, self.error, self.closed = deltas, error, False
        self.name = "script"

    async def stream(self, request: ChatRequest):
        try:
            for delta in self.deltas:
                yield delta
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


class _Record:
    calls: list["_Record"] = []

    def __init__(self, request: ChatRequest) -> None:
        self.model, self.moments = request.model, []
        _Record.calls.append(self)

    def first_token(self, seconds: float) -> None:
        self.moments.append("first_token")

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.moments.append(("usage", prompt_tokens, completion_tokens))

    def ended(self, outcome: str, seconds: float, error: BaseException | None) -> None:
        self.moments.append(("ended", outcome, type(error).__name__ if error else None))


@pytest.fixture(autouse=True)
def _fresh():
    _Record.calls = []


REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_every_observer_sees_first_token_usage_and_the_end_once():
    inner = _Script(
        [ChatDelta(), ChatDelta(text="a"), ChatDelta(text="b"), ChatDelta(prompt_tokens=3, completion_tokens=2)]
    )
    provider = ObservedProvider(inner, [_Record, _Record])
    texts = [delta.text async for delta in provider.stream(REQUEST)]
    assert texts == ["", "a", "b", ""]
    assert len(_Record.calls) == 2
    for call in _Record.calls:
        assert call.model == "m"
        assert call.moments == ["first_token", ("usage", 3, 2), ("ended", "ok", None)]
    assert provider.name == "script"  # anything else passes through


async def test_a_provider_error_ends_the_call_with_its_code():
    provider = ObservedProvider(_Script([ChatDelta(text="a")], RateLimited("slow down")), [_Record])
    with pytest.raises(RateLimited):
        async for _ in provider.stream(REQUEST):
            pass
    assert _Record.calls[0].moments == ["first_token", ("ended", "rate_limit_exceeded", "RateLimited")]


async def test_a_consumer_that_stops_early_closes_the_inner_stream_and_ends_cancelled():
    inner = _Script([ChatDelta(text="a"), ChatDelta(text="b")])
    stream = ObservedProvider(inner, [_Record]).stream(REQUEST)
    assert (await anext(stream)).text == "a"
    await stream.aclose()
    assert inner.closed
    assert _Record.calls[0].moments == ["first_token", ("ended", "cancelled", None)]
