"""Two `assistd serve` replicas over one Cassandra: shared runs, one active run per thread across
replicas, a killed replica's run ended by the other, and data that outlives restarts."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import MODEL, Server, cassandra_url, drop_keyspace, sse_frames, unique, wait_for

LEASE = 4  # short for the tests, yet safe from a loaded 2-core machine's scheduling delays


def _frames(server, method, path, into: list | None = None, **kwargs):
    """The SSE frames of a request (comments left out), also appended to `into` as they arrive."""
    frames = [] if into is None else into
    with httpx.stream(method, server.base_url + path, timeout=60, **kwargs) as response:
        assert response.status_code == 200
        for frame in sse_frames(response.iter_lines()):
            if "comment" not in frame:
                frames.append(frame)
    return frames


@pytest.fixture
def replicas(provider, tmp_path):
    env = {"ASSISTD_STORE": cassandra_url(), "ASSISTD_RUN_LEASE_SECONDS": str(LEASE)}
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    pair = [Server(tmp_path / "r1", provider, env).start(), Server(tmp_path / "r2", provider, env).start()]
    yield pair
    for server in pair:
        server.stop()
    drop_keyspace(env["ASSISTD_STORE"])


def test_a_run_started_on_one_replica_is_watched_to_the_end_on_the_other(replicas, provider):
    r1, r2 = replicas
    gate = unique("gate-replica")
    assistant = r1.client().beta.assistants.create(model=MODEL)
    thread = r1.client().beta.threads.create(messages=[{"role": "user", "content": f"[chunks:30][gate:{gate}:10]"}])
    streamed: list = []
    writer = threading.Thread(
        target=lambda: streamed.extend(
            _frames(r1, "POST", f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True})
        )
    )
    writer.start()
    wait_for(lambda: provider.is_held(gate))  # r1's run is halfway, its model call held
    run = r2.client().beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status == "in_progress"
    watched: list = []
    url = f"/threads/{thread.id}/runs/{run.id}/events"
    watcher = threading.Thread(
        target=_frames, args=(r2, "GET", url, watched), kwargs={"headers": {"Last-Event-ID": "0"}}
    )
    watcher.start()
    wait_for(lambda: any(f.get("event") == "thread.message.delta" for f in list(watched)))
    provider.release(gate)  # the rest is made while r2's watcher is following
    writer.join(60)
    watcher.join(60)
    assert watched == streamed and watched[-1]["event"] == "done"
    assert [int(f["id"]) for f in watched] == list(range(1, len(watched) + 1))
    assert sum(f["event"] == "thread.message.delta" for f in watched) == 30


def test_concurrent_runs_on_one_thread_through_both_replicas_only_one_wins(replicas):
    r1, r2 = replicas
    assistant = r1.client().beta.assistants.create(model=MODEL)
    thread = r1.client().beta.threads.create(messages=[{"role": "user", "content": "[chunks:20][slow:0.05]"}])

    def attempt(server):
        try:
            return server.client().beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        except openai.BadRequestError as error:
            return error

    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(attempt, [r1, r2]))
        won = [r for r in results if not isinstance(r, Exception)]
        assert len(won) == 1 and "already has an active run" in str(
            next(r for r in results if isinstance(r, Exception))
        )
        r2.client().beta.threads.runs.poll(run_id=won[0].id, thread_id=thread.id, poll_interval_ms=50)


def test_a_killed_replicas_run_is_ended_by_the_other_and_data_survives_restarts(replicas):
    r1, r2 = replicas
    client = r2.client()
    assistant = r1.client().beta.assistants.create(model=MODEL, name="durable")
    thread = r1.client().beta.threads.create(messages=[{"role": "user", "content": "[chunks:200][slow:0.1]"}])
    run = r1.client().beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_for(lambda: client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data)
    r1.stop(kill=True)  # kill -9 mid-run
    ended = wait_for(
        lambda: (r := client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)).status == "failed" and r,
        timeout=LEASE * 5,
    )
    assert ended.last_error.code == "server_error"
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "[reply:still here]"}],
        poll_interval_ms=50,
    )
    assert again.status == "completed"
    r2.stop()
    r2.start()
    after = r2.client()
    assert after.beta.assistants.retrieve(assistant.id).name == "durable"
    assert after.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "still here"


def test_a_cancel_sent_to_the_other_replica_cancels_the_run(replicas):
    r1, r2 = replicas
    assistant = r1.client().beta.assistants.create(model=MODEL)
    thread = r1.client().beta.threads.create(messages=[{"role": "user", "content": "[chunks:200][slow:0.05]"}])
    run = r1.client().beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_for(lambda: r2.client().beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data)
    assert r2.client().beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id).status == "cancelling"
    final = r2.client().beta.threads.runs.poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "cancelled"
    message = r2.client().beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"


def test_concurrent_submits_through_both_replicas_resume_the_run_once(replicas):
    r1, r2 = replicas
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    assistant = r1.client().beta.assistants.create(model=MODEL, tools=[weather])
    thread = r1.client().beta.threads.create(
        messages=[{"role": "user", "content": '[call:get_weather:{"city": "Oslo"}]'}]
    )
    run = r1.client().beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    (call,) = run.required_action.submit_tool_outputs.tool_calls

    def submit(server):
        try:
            return server.client().beta.threads.runs.submit_tool_outputs(
                thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "4C"}]
            )
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(submit, [r1, r2]))
    assert len([r for r in results if not isinstance(r, Exception)]) == 1
    final = r2.client().beta.threads.runs.poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "completed"
    frames = _frames(r2, "GET", f"/threads/{thread.id}/runs/{run.id}/events", headers={"Last-Event-ID": "0"})
    ids = [int(f["id"]) for f in frames]
    assert ids == list(range(1, len(ids) + 1))  # one segment's events, no sequence number written twice
    answers = [m for m in r2.client().beta.threads.messages.list(thread_id=thread.id).data if m.role == "assistant"]
    assert len(answers) == 1
