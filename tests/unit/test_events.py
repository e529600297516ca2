"""The run event log: gap-free numbering, commit before publish, followers, snapshots."""

import asyncio

import pytest
from assistd.v1 import message_pb2, run_pb2

from service.engine.coalesce import MAX_COALESCED_TEXT
from service.engine.events import COALESCE_BACKLOG, EventLog, FellBehind, RunChannel
from service.engine.lifecycle import SNAPSHOT, Effect
from service.repo import Repo
from service.store.sqlite import SqliteStore

E = run_pb2


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "events.db"))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def log(store):
    events = EventLog(store)
    events.start()
    yield events
    await events.stop()


def _delta(text: str) -> message_pb2.MessageDeltaEvent:
    event = message_pb2.MessageDeltaEvent(id="msg_1")
    event.delta.content.add(index=0).text.value = text
    return event


async def _collect(channel: RunChannel, after: int) -> list[run_pb2.RunEvent]:
    return [event async for event in channel.follow(after)]


async def test_events_are_numbered_gap_free_committed_in_order_and_then_published(log, store):
    channel = RunChannel("t", "thread_1", "run_1")
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=E.RUN_STATUS_QUEUED)
    follower = asyncio.create_task(_collect(channel, 0))
    numbers = [log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, run)]
    numbers += [log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(str(i))) for i in range(50)]
    done = log.done(channel, release_thread=False)
    assert numbers + [done] == list(range(1, 53))
    followed = await asyncio.wait_for(follower, 10)
    assert [e.sequence_number for e in followed] == list(range(1, 53))
    assert [e.message_delta.delta.content[0].text.value for e in followed[1:51]] == [str(i) for i in range(50)]
    stored = await store.read_events("t", "run_1", 0)
    assert [seq for seq, _ in stored] == list(range(1, 53))  # in the log before anyone saw them
    assert (await Repo(store).get("t", run_pb2.Run, "run_1", "thread_1")).status == E.RUN_STATUS_QUEUED


async def test_a_late_follower_gets_what_comes_after_its_sequence_and_stops_at_done(log):
    channel = RunChannel("t", "thread_1", "run_1")
    for i in range(5):
        log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(str(i)))
    await channel.committed(5)
    late = asyncio.create_task(_collect(channel, 3))
    other = asyncio.create_task(_collect(channel, 0))
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta("5"))
    log.done(channel, release_thread=False)
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run_pb2.Run(id="run_1"))  # the next segment's
    assert [e.sequence_number for e in await asyncio.wait_for(late, 10)] == [4, 5, 6, 7]
    assert [e.sequence_number for e in await asyncio.wait_for(other, 10)] == list(range(1, 8))


async def test_a_channel_numbers_from_its_first_sequence(log, store):
    channel = RunChannel("t", "thread_1", "run_1", first_sequence=10)
    assert log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run_pb2.Run(id="run_1")) == 10
    await channel.committed(10)
    assert [seq for seq, _ in await store.read_events("t", "run_1", 0)] == [10]


async def test_effects_are_written_in_order_and_a_snapshot_stores_without_an_event(log, store):
    channel = RunChannel("t", "thread_1", "run_1")
    step = run_pb2.RunStep(id="step_1", run_id="run_1", status=E.RUN_STEP_STATUS_IN_PROGRESS)
    run = run_pb2.Run(id="run_1", thread_id="thread_1", status=E.RUN_STATUS_REQUIRES_ACTION)
    last = log.apply(channel, [Effect(SNAPSHOT, step), Effect(E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION, run)])
    assert last == 1
    await channel.committed(last)
    assert [seq for seq, _ in await store.read_events("t", "run_1", 0)] == [1]
    assert (await Repo(store).get("t", run_pb2.RunStep, "step_1", "run_1")).status == E.RUN_STEP_STATUS_IN_PROGRESS


async def test_an_event_carries_the_object_as_it_was_when_emitted(log):
    channel = RunChannel("t", "thread_1", "run_1")
    run = run_pb2.Run(id="run_1", status=E.RUN_STATUS_QUEUED)
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run)
    run.status = E.RUN_STATUS_IN_PROGRESS
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, run)
    log.done(channel, release_thread=False)
    followed = await asyncio.wait_for(_collect(channel, 0), 10)
    assert [e.run.status for e in followed[:2]] == [E.RUN_STATUS_QUEUED, E.RUN_STATUS_IN_PROGRESS]


async def test_done_with_release_frees_the_thread_in_the_same_commit(log, store):
    assert await store.claim_thread("t", "thread_1", "run_1") is None
    channel = RunChannel("t", "thread_1", "run_1")
    await channel.committed(log.done(channel, release_thread=True))
    assert await store.active_run("t", "thread_1") is None


async def test_a_log_that_cannot_commit_closes_the_channel_instead_of_publishing(log, store):
    channel = RunChannel("t", "thread_1", "run_1")
    await store.close()  # every commit now fails
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run_pb2.Run(id="run_1"))
    followed = await asyncio.wait_for(_collect(channel, 0), 30)
    assert followed == [] and channel.closed
    await store.open()  # for the fixture's teardown


async def test_a_follower_further_behind_than_the_window_is_told_so(log, monkeypatch):
    monkeypatch.setattr(RunChannel, "WINDOW", 8)
    channel = RunChannel("t", "thread_1", "run_1")
    for i in range(20):
        log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(str(i)))
    await channel.committed(20)
    kept = [e.sequence_number async for e in _until(channel.follow(12), 20)]
    assert kept == list(range(13, 21))  # the last 8 are still there
    with pytest.raises(FellBehind):
        await anext(channel.follow(5))


async def _until(events, last):
    async for event in events:
        yield event
        if event.sequence_number == last:
            return


async def test_under_backlog_text_deltas_merge_before_they_are_numbered_gap_free_and_in_order(log, store):
    busy = RunChannel("t", "thread_0", "run_0")  # another run's burst: the writer is behind
    for _ in range(COALESCE_BACKLOG):
        log.emit(busy, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, run_pb2.RunStepDeltaEvent(id="step_0"))
    channel = RunChannel("t", "thread_1", "run_1")
    follower = asyncio.create_task(_collect(channel, 0))
    texts = [f"w{i} " for i in range(300)]
    numbers = [log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(text)) for text in texts[:150]]
    other = message_pb2.MessageDeltaEvent(id="msg_2")  # another message: never merged with msg_1
    other.delta.content.add(index=0).text.value = "other"
    numbers.append(log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, other))
    numbers += [log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(text)) for text in texts[150:]]
    done = log.done(channel, release_thread=False)
    followed = await asyncio.wait_for(follower, 10)
    sequence = [e.sequence_number for e in followed]
    assert sequence == list(range(1, len(followed) + 1)) and sequence[-1] == done
    assert sorted(set(numbers)) == sequence[:-1]  # each emit answered the number its text went out under
    assert len(followed) < 302  # merged
    values = [e.message_delta.delta.content[0].text.value for e in followed[:-1]]
    assert "".join(values) == "".join(texts[:150]) + "other" + "".join(texts[150:])
    assert [e.message_delta.id for e in followed[:-1]].count("msg_2") == 1
    assert max(len(v) for v in values) <= MAX_COALESCED_TEXT
    stored = [run_pb2.RunEvent.FromString(data) for _, data in await store.read_events("t", "run_1", 0)]
    assert stored == followed  # the log holds exactly what followers saw


async def test_without_backlog_every_text_delta_stays_its_own_event(log):
    channel = RunChannel("t", "thread_1", "run_1")
    follower = asyncio.create_task(_collect(channel, 0))
    for i in range(20):
        log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta(str(i)))
    log.done(channel, release_thread=False)
    followed = await asyncio.wait_for(follower, 10)
    assert [e.message_delta.delta.content[0].text.value for e in followed[:-1]] == [str(i) for i in range(20)]


async def test_no_delta_merges_across_an_object_write(log):
    busy = RunChannel("t", "thread_0", "run_0")
    for _ in range(COALESCE_BACKLOG):
        log.emit(busy, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, run_pb2.RunStepDeltaEvent(id="step_0"))
    channel = RunChannel("t", "thread_1", "run_1")
    follower = asyncio.create_task(_collect(channel, 0))
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta("a"))
    log.emit(channel, SNAPSHOT, run_pb2.Run(id="run_1", thread_id="thread_1"))
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta("b"))
    log.emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, _delta("c"))
    log.done(channel, release_thread=False)
    followed = await asyncio.wait_for(follower, 10)
    assert [e.message_delta.delta.content[0].text.value for e in followed[:-1]] == ["a", "bc"]
