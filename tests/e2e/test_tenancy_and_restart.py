"""API keys map to tenants that cannot see each other; a restart keeps data and ends orphaned runs."""

import openai
import pytest

from tests.conftest import MODEL, Server, unique, wait_for

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores
LEASE = 3  # seconds: with a shared store (Cassandra) a killed process's runs are ended once its lease runs out


def test_keys_resolve_to_isolated_tenants(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_API_KEYS": "key-a=acme,key-b=globex"}).start()
    try:
        a = openai.OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0)
        b = openai.OpenAI(base_url=server.base_url, api_key="key-b", max_retries=0)
        stranger = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
        mine = a.beta.assistants.create(model=MODEL, name="acme's")
        with pytest.raises(openai.AuthenticationError) as info:
            stranger.beta.assistants.list()
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.NotFoundError):
            b.beta.assistants.retrieve(mine.id)
        assert [x.id for x in a.beta.assistants.list().data] == [mine.id]
        assert b.beta.assistants.list().data == []
        thread = a.beta.threads.create(messages=[{"role": "user", "content": "[reply:acme only]"}])
        with pytest.raises(openai.NotFoundError):
            b.beta.threads.runs.create(thread_id=thread.id, assistant_id=mine.id)
        slow = a.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=mine.id,
            additional_messages=[{"role": "user", "content": "[chunks:30][slow:0.05]"}],
        )
        with pytest.raises(openai.NotFoundError):
            b.beta.threads.runs.cancel(run_id=slow.id, thread_id=thread.id)  # not globex's run to cancel
        run = a.beta.threads.runs.poll(run_id=slow.id, thread_id=thread.id, poll_interval_ms=50)
        assert run.status == "completed"
        with pytest.raises(openai.NotFoundError):
            b.beta.threads.messages.list(thread_id=thread.id)
    finally:
        server.stop()


def test_restart_keeps_data_and_fails_the_run_that_was_cut_off(provider, tmp_path, store_env):
    env = {**store_env, "ASSISTD_RUN_LEASE_SECONDS": str(LEASE)}  # the restarted server uses the same store
    server = Server(tmp_path, provider, env).start()
    client = server.client()
    assistant = client.beta.assistants.create(model=MODEL, name="survivor")
    gate = unique("gate-never-opened")  # the run cannot end before the kill
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[chunks:100][gate:{gate}:5]"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_for(lambda: client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data)
    server.stop(kill=True)  # kill -9 mid-run

    server = Server(tmp_path, provider, env).start()
    try:
        client = server.client()
        assert client.beta.assistants.retrieve(assistant.id).name == "survivor"
        cut = wait_for(
            lambda: (
                (r := client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)).status == "failed" and r
            ),
            timeout=LEASE * 5,
        )
        assert cut.last_error.code == "server_error"
        step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
        assert step.status == "failed"
        again = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "[reply:back]"}],
            poll_interval_ms=50,
        )
        assert again.status == "completed"
    finally:
        server.stop()
