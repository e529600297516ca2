"""Truncation "auto": a thread longer than the model's context window loses its oldest turns
(the Assistants API's default truncation_strategy, and the Responses API's `truncation: "auto"`).
The window here comes from the model list (`model_info.max_input_tokens`)."""

import uuid

import openai
import pytest

from tests.conftest import ROOT, Server

WINDOW = 1_200  # tokens the small model takes
SMALL = "scripted-small-window"
FILLER = "the quick brown fox jumps over the lazy dog and keeps running far away " * 2  # ~30 tokens


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assistd-truncation")
    models = tmp / "models.yaml"
    models.write_text(
        (ROOT / "tests" / "models.yaml").read_text()
        + f"""  - model_name: {SMALL}
    litellm_params:
      model: openai/scripted
      api_base: os.environ/SCRIPTED_API_BASE
      api_key: test-key
    model_info:
      max_input_tokens: {WINDOW}
"""
    )
    srv = Server(tmp, provider, {"ASSISTD_MODELS": str(models)}).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    return server.client()


def _long_thread(client, marker: str, n: int = 60):
    messages = [{"role": "user", "content": f"old message {i}: {FILLER}"} for i in range(n)]
    messages.append({"role": "user", "content": f"{marker} [reply:ok]"})
    return client.beta.threads.create(messages=messages)


def _sent(provider, marker: str) -> list[dict]:
    (request,) = provider.requests_with(marker)
    return request["messages"]


def test_an_assistants_run_drops_the_oldest_messages_past_the_window(client, provider):
    marker = f"auto-{uuid.uuid4().hex[:8]}"
    assistant = client.beta.assistants.create(model=SMALL, instructions="Be brief.")
    thread = _long_thread(client, marker)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert run.truncation_strategy.type == "auto"  # the default, as OpenAI's
    sent = _sent(provider, marker)
    assert sent[0] == {"role": "system", "content": "Be brief."}  # instructions always stay
    assert marker in sent[-1]["content"]  # the last message too
    kept = [m["content"] for m in sent[1:-1]]
    assert 0 < len(kept) < 60, len(kept)
    # the newest of the old messages are the ones kept, in order
    assert kept == [f"old message {i}: {FILLER}" for i in range(60 - len(kept), 60)]
    # the whole thread is still there: truncation only shapes the prompt
    assert len(client.beta.threads.messages.list(thread.id, limit=100).data) == 62  # 61 and the answer


def test_last_messages_and_a_thread_that_fits_are_sent_whole(client, provider):
    marker = f"fits-{uuid.uuid4().hex[:8]}"
    assistant = client.beta.assistants.create(model=SMALL)
    thread = _long_thread(client, marker, n=3)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    assert len(_sent(provider, marker)) == 4

    marker = f"last-{uuid.uuid4().hex[:8]}"
    thread = _long_thread(client, marker)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 25},
    )
    assert run.status == "completed"
    assert len(_sent(provider, marker)) == 25  # what the run asked for, even past the window


def test_the_assistants_api_refuses_the_responses_only_strategy(client):
    assistant = client.beta.assistants.create(model=SMALL)
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, truncation_strategy={"type": "disabled"}
        )
    assert raised.value.body["param"] == "truncation_strategy.type"
    assert client.beta.threads.runs.list(thread.id).data == []


def test_a_response_truncates_only_when_asked(client, provider):
    old = [{"role": "user", "content": f"old message {i}: {FILLER}"} for i in range(60)]
    marker = f"resp-auto-{uuid.uuid4().hex[:8]}"
    response = client.responses.create(
        model=SMALL, input=[*old, {"role": "user", "content": f"{marker} [reply:ok]"}], truncation="auto"
    )
    assert response.status == "completed" and response.truncation == "auto"
    sent = _sent(provider, marker)
    assert marker in sent[-1]["content"] and len(sent) < 61

    marker = f"resp-off-{uuid.uuid4().hex[:8]}"
    response = client.responses.create(model=SMALL, input=[*old, {"role": "user", "content": f"{marker} [reply:ok]"}])
    assert response.truncation == "disabled"  # OpenAI's default: the whole input, however long
    assert len(_sent(provider, marker)) == 61

    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=SMALL, input="hi", truncation="sometimes")  # type: ignore[arg-type]
    assert raised.value.body["param"] == "truncation"
