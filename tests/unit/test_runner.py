"""The engine's follow: live from a run's channel, from the log where the channel cannot serve."""

import pytest
from assistd.v1 import message_pb2, run_pb2, thread_pb2

from service.engine.events import EventLog, RunChannel
from service.engine.runner import RunEngine
from service.llm.router import ModelRouter
from service.repo import Repo
from service.store.errors import StoreUnavailable
from service.store.sqlite import SqliteStore

E = run_pb2


@pytest.fixture
async def engine(tmp_path):
    store = SqliteStore(str(tmp_path / "runner.db"))
    await store.open()
    log = EventLog(store)
    log.start()
    yield RunEngine(store, Repo(store), ModelRouter(), log), log
    await log.stop()
    await store.close()


def _delta(i: int) -> message_pb2.MessageDeltaEvent:
    event = message_pb2.MessageDeltaEvent(id="msg_1")
    event.delta.content.add(index=0).text.value = str(i)
    return event


async def test_a_follower_that_falls_out_of_the_window_catches_up_from_the_log_exactly_once(engine, monkeypatch):
    engine, log = engine
    monkeypatch.setattr(RunChannel, "WINDOW", 16)
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=E.RUN_STATUS_IN_PROGRESS)
    live = engine._open("t", run, first_sequence=1)
    await live.channel.committed(log.emit(live.channel, E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, run))
    follower = engine.follow("t", "thread_1", "run_1", 0)
    assert (await anext(follower)).sequence_number == 1
    for i in range(100):  # the follower reads nothing meanwhile: 100 events > a window of 16
        log.emit(live.channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(i))
    await live.channel.committed(log.done(live.channel, release_thread=False))
    rest = [event async for event in follower]
    assert [e.sequence_number for e in rest] == list(range(2, 103))
    assert [e.message_delta.delta.content[0].text.value for e in rest[:100]] == [str(i) for i in range(100)]
    assert rest[-1].event == E.RUN_EVENT_TYPE_DONE


async def _run_to_its_end(engine, run: run_pb2.Run) -> tuple[list[run_pb2.RunEvent], list[run_pb2.RunEvent]]:
    """The run's logged events when start returns, and all its events once it has ended."""
    thread = thread_pb2.Thread(id=run.thread_id, object="thread")
    started = await engine.start("t", run, [], new_thread=thread)
    at_start = [run_pb2.RunEvent.FromString(data) for _, data in await engine._store.read_events("t", run.id, 0)]
    everything = [event async for event in engine.follow("t", run.thread_id, run.id, 0)]
    assert started.run.status == E.RUN_STATUS_QUEUED  # what CreateRun answers
    assert [e.sequence_number for e in everything] == list(range(1, len(everything) + 1))
    return at_start, everything


async def test_a_run_with_nothing_to_wait_for_is_in_progress_with_its_first_commit(engine):
    engine, _ = engine
    # no completion tokens to spend: the run ends incomplete without calling a model
    run = run_pb2.Run(id="run_plain", thread_id="thread_plain", status=E.RUN_STATUS_QUEUED, max_completion_tokens=0)
    at_start, everything = await _run_to_its_end(engine, run)
    first = [E.RUN_EVENT_TYPE_THREAD_CREATED, E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED]
    assert [e.event for e in at_start[:4]] == [*first, E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS]
    assert at_start[3].run.status == E.RUN_STATUS_IN_PROGRESS and at_start[3].run.started_at
    assert [e.event for e in everything].count(E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS) == 1
    assert everything[-2].run.status == E.RUN_STATUS_INCOMPLETE and everything[-1].event == E.RUN_EVENT_TYPE_DONE


class _FailsAfterTheClaim(SqliteStore):
    """A store without one transaction for the claim and the commit (as Cassandra): its start
    fails after the claim holds, with none (written=False) or all of the run's first commit."""

    written = False

    async def claim_and_commit(self, tenant, thread_id, run_id, owner, entries):
        assert await self.claim_thread(tenant, thread_id, run_id, owner) is None
        if self.written:
            await self.commit(entries)
        raise StoreUnavailable("the store went away after the claim")


@pytest.mark.parametrize("written", [False, True], ids=["nothing-written", "run-written"])
async def test_a_start_that_fails_after_its_claim_is_left_to_the_sweep_which_frees_the_thread(tmp_path, written):
    store = _FailsAfterTheClaim(str(tmp_path / "runner.db"))
    store.written = written
    await store.open()
    log = EventLog(store)
    log.start()
    engine = RunEngine(store, Repo(store), ModelRouter(), log)
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=E.RUN_STATUS_QUEUED)
    with pytest.raises(StoreUnavailable):
        await engine.start("t", run, [], new_thread=thread_pb2.Thread(id="thread_1", object="thread"))
    assert await store.active_run("t", "thread_1") == "run_1"  # the claim stands until the sweep
    await engine.sweep()
    assert await store.active_run("t", "thread_1") is None
    stored = await Repo(store).get("t", run_pb2.Run, "run_1", "thread_1")
    if written:  # the run is there: it is ended, never left queued
        assert stored is not None and stored.status == E.RUN_STATUS_FAILED
    else:
        assert stored is None
    await log.stop()
    await store.close()
