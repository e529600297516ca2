"""Every provider fault ends the run cleanly, through both adapters: the run reaches a terminal
status with the right `last_error.code`, the stream ends with the terminal event and `done`, and
retries happen before the first token only, at most ASSISTD_LLM_RETRIES times."""

import json
import uuid

import httpx
import pytest

from tests.conftest import LITELLM_MODEL, MODEL, Server, sse_frames

RETRIES = 2
TIMEOUT_SECONDS = 2


@pytest.fixture(scope="module")
def faulty_server(provider, tmp_path_factory):
    env = {"ASSISTD_LLM_RETRIES": str(RETRIES), "ASSISTD_LLM_TIMEOUT": str(TIMEOUT_SECONDS)}
    server = Server(tmp_path_factory.mktemp("faults"), provider, env).start()
    yield server
    server.stop()


# fault directive -> (run status, last_error.code, provider attempts)
FAULTS = {
    "[error:500]": ("failed", "server_error", RETRIES + 1),  # retried: nothing was streamed yet
    "[flaky:9:429]": ("failed", "rate_limit_exceeded", RETRIES + 1),  # every retry refused too
    "[flaky:2:503]": ("completed", None, RETRIES + 1),  # the last retry answers
    "[error:400]": ("failed", "invalid_prompt", 1),  # the request itself is wrong: never retried
    "[chunks:10][fault:drop:3]": ("failed", "server_error", 1),  # cut after tokens: never retried
    "[chunks:10][fault:malformed:3]": ("failed", "server_error", 1),
    "[fault:hang]": ("failed", "server_error", RETRIES + 1),  # each attempt times out
}


@pytest.mark.parametrize("model", [MODEL, LITELLM_MODEL], ids=["lean", "litellm"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_provider_fault_ends_the_run_and_its_stream(faulty_server, provider, model, fault):
    status, code, attempts = FAULTS[fault]
    marker = f"{fault} {uuid.uuid4().hex}"  # the scripted provider counts attempts per prompt
    client = faulty_server.client()
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": marker}])
    with httpx.stream(
        "POST",
        f"{faulty_server.base_url}/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
        headers={"Authorization": "Bearer test-key"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        frames = [f for f in sse_frames(response.iter_lines()) if "event" in f]
    names = [f["event"] for f in frames]
    assert names[-2:] == [f"thread.run.{status}", "done"], names
    run = json.loads(frames[-2]["data"])
    assert run["status"] == status
    assert (run["last_error"] or {}).get("code") == code, run["last_error"]
    assert client.beta.threads.runs.retrieve(run["id"], thread_id=thread.id).status == status
    assert len(provider.requests_with(marker)) == attempts
    # the thread takes a new run afterwards: nothing was left holding it
    retry = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, additional_messages=[{"role": "user", "content": "[reply:ok]"}]
    )
    assert retry.status == "completed"
