"""Truncation "auto" on a chat prompt, and where a model's context window comes from."""

import asyncio

from service.engine.context_fit import fit
from service.llm.context_windows import shipped_windows, window_of
from service.llm.tokens import count_chat_tokens

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa " * 20  # 200 words


def _fit(chat: list[dict], window: int | None) -> list[dict]:
    async def known() -> int | None:
        return window

    return asyncio.run(fit(chat, known))


def _chat(turns: int) -> list[dict]:
    chat = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        chat.append({"role": "user", "content": f"q{i} {WORDS}"})
        chat.append({"role": "assistant", "content": f"a{i} {WORDS}"})
    chat.append({"role": "user", "content": "last question"})
    return chat


def test_a_prompt_that_fits_is_the_same_list():
    chat = _chat(2)
    assert _fit(chat, 10_000) is chat
    assert _fit(chat, None) is chat  # an unknown window: nothing dropped
    short = chat[:1]
    assert _fit(short, 10) is short  # under the smallest window there is, whatever the window says


def test_the_oldest_turns_go_first_and_the_rest_fits():
    chat = _chat(10)
    budget = count_chat_tokens(chat) // 2
    kept = _fit(chat, budget)
    assert kept[0] == chat[0] and kept[-1] == chat[-1]
    assert count_chat_tokens(kept) <= budget
    assert kept[1:] == chat[len(chat) - len(kept) + 1 :]  # a suffix of the conversation
    assert count_chat_tokens(_fit(chat, budget + 200)) > count_chat_tokens(kept)  # no more than needed


def test_a_tool_call_leaves_with_its_results():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chat: list[dict] = [
        {"role": "user", "content": f"first {WORDS * 3}"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"result {WORDS * 3}"},
        {"role": "user", "content": f"second {WORDS * 3}"},
    ]
    whole = count_chat_tokens(chat)
    kept = _fit(chat, whole - count_chat_tokens(chat[:1]) + 3)
    assert kept == chat[1:]  # the first message alone was enough
    kept = _fit(chat, count_chat_tokens(chat[3:]) + 1)
    assert kept == chat[3:]  # the call went with its result, never one without the other


def test_the_last_turn_stays_even_when_it_alone_is_too_long():
    chat = [*_chat(3)[:-1], {"role": "user", "content": WORDS * 10}]
    assert _fit(chat, 1_500) == [chat[0], chat[-1]]


def test_non_ascii_text_is_bounded_by_its_bytes():
    chat = [{"role": "user", "content": "日本語のテキスト" * 150}, {"role": "user", "content": "最後"}]
    tokens = count_chat_tokens(chat)
    assert len(chat[0]["content"]) < tokens  # more tokens than characters: a character bound would be wrong
    assert _fit(chat, tokens - 1) == chat[1:]


def test_windows_from_the_model_list_then_litellms_table():
    shipped = shipped_windows()
    assert shipped["gpt-4o"] == 128_000
    assert window_of("openai/gpt-4o", None, shipped) == 128_000  # the provider prefix is dropped
    assert window_of("openai/gpt-4o", {"max_input_tokens": 500}, shipped) == 500  # the model list wins
    assert window_of("openai/scripted", {"adapter": "litellm"}, shipped) is None
