"""SQLite-specific store behaviour (the shared contract is tests/contract/test_store.py)."""

import asyncio

import pytest

from service.store import ListQuery, Record
from service.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "t.db"))
    await s.open()
    yield s
    await s.close()


def _rec(kind, parent, i, tag=""):
    return Record(kind=kind, parent=parent, id=i, data=i.encode(), tag=tag)


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
