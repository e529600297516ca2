"""The SQLite store against the Store contract (the Cassandra issue will parametrize this suite)."""

import asyncio

import pytest

from service.ids import new_id
from service.store import ListQuery, LogEntry, Record
from service.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "t.db"))
    await s.open()
    yield s
    await s.close()


def _rec(kind, parent, i, tag=""):
    return Record(kind=kind, parent=parent, id=i, data=i.encode(), tag=tag)


async def test_put_get_delete_and_tenant_isolation(store):
    await store.put("a", [_rec("assistant", "", "asst_1")])
    assert await store.get("a", "assistant", "", "asst_1") == b"asst_1"
    assert await store.get("b", "assistant", "", "asst_1") is None
    assert not await store.delete("b", "assistant", "", "asst_1")
    assert await store.delete("a", "assistant", "", "asst_1")
    assert await store.get("a", "assistant", "", "asst_1") is None


async def test_pages(store):
    ids = [new_id("msg_") for _ in range(5)]
    await store.put("t", [_rec("message", "th", i, tag="run_1" if n % 2 else "") for n, i in enumerate(ids)])
    page = await store.list_page("t", "message", "th", ListQuery(limit=2, order="asc"))
    assert page.items == [i.encode() for i in ids[:2]] and page.has_more
    page = await store.list_page("t", "message", "th", ListQuery(limit=5, order="asc"))
    assert len(page.items) == 5 and not page.has_more
    page = await store.list_page("t", "message", "th", ListQuery(limit=2, order="desc", before=ids[1]))
    assert page.items == [i.encode() for i in ids[3:1:-1]] and page.has_more
    page = await store.list_page("t", "message", "th", ListQuery(limit=10, order="asc"), tag="run_1")
    assert page.items == [ids[1].encode(), ids[3].encode()]
    assert (await store.list_page("t", "message", "other", ListQuery())).items == []


async def test_one_active_run_per_thread_under_concurrent_claims(store):
    results = await asyncio.gather(*(store.claim_thread("t", "th", f"run_{i}") for i in range(20)))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(r == f"run_{winners[0]}" for r in results if r is not None)
    await store.release_thread("t", "th", "run_other")  # not the owner: no effect
    assert await store.active_run("t", "th") == f"run_{winners[0]}"
    await store.release_thread("t", "th", f"run_{winners[0]}")
    assert await store.claim_thread("t", "th", "run_next") is None


async def test_event_log_commit_and_replay(store):
    await store.commit([LogEntry("t", "run_1", n, f"e{n}".encode(), [_rec("run", "th", "run_1")]) for n in (1, 2, 3)])
    assert await store.read_events("t", "run_1", 1) == [(2, b"e2"), (3, b"e3")]
    assert await store.read_events("u", "run_1", 0) == []
    with pytest.raises(Exception):
        await store.commit([LogEntry("t", "run_1", 4, b"e4"), LogEntry("t", "run_1", 3, b"dup")])
    assert [s for s, _ in await store.read_events("t", "run_1", 0)] == [1, 2, 3]  # all or nothing


async def test_delete_thread_removes_everything_under_it(store):
    await store.put("t", [_rec("thread", "", "th"), _rec("message", "th", "m1"), _rec("run", "th", "r1"), _rec("step", "r1", "s1")])
    await store.commit([LogEntry("t", "r1", 1, b"e")])
    assert await store.delete_thread("t", "th")
    for kind, parent, i in [("thread", "", "th"), ("message", "th", "m1"), ("run", "th", "r1"), ("step", "r1", "s1")]:
        assert await store.get("t", kind, parent, i) is None
    assert await store.read_events("t", "r1", 0) == []
    assert not await store.delete_thread("t", "th")


async def test_a_write_cancelled_midway_neither_half_commits_nor_wedges_the_store(store):
    records = [_rec("message", "th", f"m{i}") for i in range(200)]
    task = asyncio.create_task(store.put("t", records))
    await asyncio.sleep(0)  # let it begin
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.put("t", [_rec("assistant", "", "after")])  # the store still takes writes
    assert await store.get("t", "assistant", "", "after") == b"after"
    page = await store.list_page("t", "message", "th", ListQuery(limit=100))
    assert len(page.items) in (0, 100)  # all of the cancelled write or none of it (it was shielded)


async def test_overlapping_reads_see_what_was_committed_before_them(store):
    async def reader_load():
        for _ in range(50):
            await store.list_page("t", "message", "th", ListQuery(limit=100))

    load = [asyncio.create_task(reader_load()) for _ in range(8)]
    for i in range(30):
        await store.put("t", [_rec("run", "th", f"run_{i:03d}")])
        assert await store.get("t", "run", "th", f"run_{i:03d}") == f"run_{i:03d}".encode()
    await asyncio.gather(*load)


async def test_releasing_the_thread_commits_with_the_event(store):
    assert await store.claim_thread("t", "th", "run_1") is None
    await store.commit([LogEntry("t", "run_1", 1, b"done", release_thread="th")])
    assert await store.active_run("t", "th") is None
