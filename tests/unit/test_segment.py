"""A run segment against a real store and the scripted provider: how it ends, and what it emits."""

import asyncio

import pytest
from assistd.v1 import message_pb2, run_pb2, thread_pb2

from service import ids
from service.engine import lifecycle
from service.engine.events import EventLog, RunChannel
from service.engine.file_search import FileSearch
from service.engine.segment import Segment
from service.llm.router import ModelRouter
from service.repo import Repo
from service.store.sqlite import SqliteStore
from tests.conftest import unique

E = run_pb2
T = "tenant"


@pytest.fixture
async def world(tmp_path, provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    store = SqliteStore(str(tmp_path / "segment.db"))
    await store.open()
    log = EventLog(store)
    log.start()
    router = ModelRouter()
    yield Repo(store), log, router
    await log.stop()
    await router.close()
    await store.close()


async def _segment(world, text: str, **run_fields):
    repo, log, router = world
    thread = thread_pb2.Thread(id=ids.new_id("thread_"))
    message = message_pb2.Message(id=ids.new_id("msg_"), thread_id=thread.id, role=message_pb2.MESSAGE_ROLE_USER)
    message.content.add().text.value = text
    await repo.put(T, thread, message)
    run = run_pb2.Run(
        id=ids.new_id("run_"), thread_id=thread.id, assistant_id="asst_1", model="openai/scripted", **run_fields
    )
    run.status = E.RUN_STATUS_QUEUED
    channel = RunChannel(T, thread.id, run.id)
    segment = Segment(T, run, channel, events=log, repo=repo, provider=router, file_search=FileSearch(repo))
    return segment, run, channel


async def _events(channel: RunChannel) -> list[int]:
    await channel.committed(channel.next_sequence - 1)
    channel.close()
    return [event.event async for event in channel.follow(0)]


async def test_an_answer_completes_the_segment_and_streams_its_message(world):
    segment, run, channel = await _segment(world, "[reply:all good]")
    assert await segment.run() == lifecycle.COMPLETED
    assert run.status == E.RUN_STATUS_IN_PROGRESS and run.started_at  # the runner records the end
    assert segment.turn.text == "all good" and segment.turn.usage().completion_tokens == 3
    events = await _events(channel)
    assert events[0] == E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS
    assert events.count(E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA) == 3


async def test_function_calls_end_the_segment_waiting_for_outputs(world):
    tool = run_pb2.Run().tools.add()
    tool.function.name = "get_weather"
    segment, run, _ = await _segment(world, '[call:get_weather:{"city": "Oslo"}]', tools=[tool])
    assert await segment.run() == lifecycle.REQUIRES_ACTION
    (call,) = segment.turn.tool_step.step_details.tool_calls.items
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Oslo"}'


async def test_a_run_with_no_completion_tokens_left_is_incomplete_without_calling_the_model(world, provider):
    marker = unique("no-budget")
    segment, run, _ = await _segment(world, marker, max_completion_tokens=256)
    run.usage.completion_tokens = 256
    assert await segment.run() == lifecycle.incomplete("max_completion_tokens")
    assert provider.requests_with(marker) == []


async def test_a_stop_before_the_segment_begins_cancels_it_still_queued(world, provider):
    marker = unique("stopped-early")
    segment, run, channel = await _segment(world, marker)
    segment.interrupt()
    assert await segment.run() == lifecycle.CANCELLED
    assert run.status == E.RUN_STATUS_QUEUED and await _events(channel) == []
    assert provider.requests_with(marker) == []


async def test_an_interrupt_cancels_the_model_call_in_flight(world, provider):
    marker = unique("interrupted")
    segment, _, _ = await _segment(world, f"{marker} [chunks:200][slow:0.02]")
    task = asyncio.create_task(segment.run())
    while not segment.turn.text:  # noqa: ASYNC110 - waiting for the first streamed text
        await asyncio.sleep(0.01)
    segment.interrupt()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if provider.was_cut_off(marker):
            break
        await asyncio.sleep(0.05)
    assert provider.was_cut_off(marker)
