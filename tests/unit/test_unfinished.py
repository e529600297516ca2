"""A run with no task, concluded: its open steps and the text its message had streamed."""

import pytest
from assistd.v1 import message_pb2, run_pb2

from service.engine.unfinished import last_turn, streamed_text
from service.repo import Repo
from service.store.base import LogEntry
from service.store.sqlite import SqliteStore

E = run_pb2


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "unfinished.db"))
    await s.open()
    yield s
    await s.close()


def _delta(message_id: str, text: str) -> bytes:
    event = run_pb2.RunEvent(event=E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA)
    event.message_delta.id = message_id
    event.message_delta.delta.content.add(index=0).text.value = text
    return event.SerializeToString()


async def _log(store: SqliteStore, run_id: str, events: list[bytes]) -> None:
    await store.commit([LogEntry("t", run_id, seq, data) for seq, data in enumerate(events, start=1)])


async def test_streamed_text_joins_one_messages_deltas_across_read_pages(store):
    # 2,500 events: more than one page of read_events (1,000), interleaved with another message's
    events = [_delta("msg_a" if i % 2 == 0 else "msg_b", str(i % 10)) for i in range(2500)]
    await _log(store, "run_1", events)
    expected = "".join(str(i % 10) for i in range(0, 2500, 2))
    assert await streamed_text(store, "t", "run_1", "msg_a") == expected
    assert await streamed_text(store, "t", "run_1", "msg_missing") == ""


async def _stopped_run(repo: Repo, message: message_pb2.Message) -> run_pb2.Run:
    """A run that stopped mid-message: an open message_creation step, a finished tool step."""
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=E.RUN_STATUS_IN_PROGRESS)
    open_step = run_pb2.RunStep(
        id="step_open", run_id="run_1", thread_id="thread_1",
        type=E.RUN_STEP_TYPE_MESSAGE_CREATION, status=E.RUN_STEP_STATUS_IN_PROGRESS,
    )  # fmt: skip
    open_step.step_details.message_creation.message_id = message.id
    done_step = run_pb2.RunStep(
        id="step_done", run_id="run_1", thread_id="thread_1",
        type=E.RUN_STEP_TYPE_TOOL_CALLS, status=E.RUN_STEP_STATUS_COMPLETED,
    )  # fmt: skip
    await repo.put("t", run, open_step, done_step, message)
    return run


async def test_last_turn_recovers_the_streamed_text_of_a_message_written_empty(store):
    repo = Repo(store)
    message = message_pb2.Message(id="msg_1", thread_id="thread_1", run_id="run_1")
    run = await _stopped_run(repo, message)
    await _log(store, "run_1", [_delta("msg_1", "Hello, "), _delta("msg_1", "world")])
    turn = await last_turn(repo, store, "t", run)
    assert turn.text == "Hello, world"
    assert turn.message_step is not None and turn.message_step.id == "step_open"
    assert turn.tool_step is None  # completed steps are not the turn's


async def test_last_turn_keeps_a_message_snapshot_that_has_text(store):
    repo = Repo(store)
    message = message_pb2.Message(id="msg_1", thread_id="thread_1", run_id="run_1")
    message.content.add().text.value = "as written"
    run = await _stopped_run(repo, message)
    await _log(store, "run_1", [_delta("msg_1", "from the log")])
    turn = await last_turn(repo, store, "t", run)
    assert turn.text == "as written"
