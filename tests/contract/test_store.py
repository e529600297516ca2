"""One contract for every Store: the same tests against SQLite and a real Cassandra 5.0."""

import asyncio
import os
import uuid

import numpy as np
import pytest

from service.errors import ThreadBusy
from service.ids import id_at, new_id
from service.store import DELETED_THREAD, Key, Listing, ListQuery, LogEntry, Page, Record, open_store

CASSANDRA_URL = os.environ.get("ASSISTD_TEST_CASSANDRA", "cassandra://127.0.0.1:9042/assistd_contract")


@pytest.fixture(scope="session", params=["sqlite", "cassandra"])
async def opened_store(request, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('contract')}/c.db" if request.param == "sqlite" else CASSANDRA_URL
    store = open_store(url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def store(opened_store):
    return opened_store


@pytest.fixture
def tenant():
    return f"tenant-{uuid.uuid4().hex[:12]}"  # every test its own tenant: isolated on a shared store


def _rec(kind, parent, i, tag=""):
    return Record(kind=kind, parent=parent, id=i, data=i.encode(), tag=tag)


async def test_put_get_delete_and_tenant_isolation(store, tenant):
    await store.put(tenant, [_rec("assistant", "", "asst_1")])
    assert await store.get(tenant, "assistant", "", "asst_1") == b"asst_1"
    assert await store.get(tenant + "x", "assistant", "", "asst_1") is None
    assert not await store.delete(tenant + "x", "assistant", "", "asst_1")
    assert await store.delete(tenant, "assistant", "", "asst_1")
    assert await store.get(tenant, "assistant", "", "asst_1") is None
    assert not await store.delete(tenant, "assistant", "", "asst_1")


async def test_pages_in_both_orders_with_after_and_before(store, tenant):
    ids = [new_id("msg_") for _ in range(5)]
    await store.put(tenant, [_rec("message", "th", i) for i in ids])
    page = await store.list_page(tenant, "message", "th", ListQuery(limit=2, order="asc"))
    assert page.items == [i.encode() for i in ids[:2]] and page.has_more
    page = await store.list_page(tenant, "message", "th", ListQuery(limit=5, order="asc"))
    assert len(page.items) == 5 and not page.has_more  # exactly one page
    page = await store.list_page(tenant, "message", "th", ListQuery(limit=2, order="desc", after=ids[3]))
    assert page.items == [ids[2].encode(), ids[1].encode()] and page.has_more
    page = await store.list_page(tenant, "message", "th", ListQuery(limit=2, order="desc", before=ids[1]))
    assert page.items == [ids[3].encode(), ids[2].encode()] and page.has_more
    page = await store.list_page(tenant, "message", "th", ListQuery(limit=10, order="asc", after=ids[0], before=ids[4]))
    assert page.items == [i.encode() for i in ids[1:4]] and not page.has_more
    assert (await store.list_page(tenant, "message", "empty", ListQuery())).items == []


async def test_tags_filter_lists_and_follow_changes(store, tenant):
    ids = [new_id("file-") for _ in range(4)]
    await store.put(tenant, [_rec("vs_file", "vs", i, tag="in_progress") for i in ids])
    await store.put(tenant, [_rec("vs_file", "vs", ids[1], tag="completed")])
    in_progress = await store.list_page(tenant, "vs_file", "vs", ListQuery(limit=10, order="asc"), tag="in_progress")
    assert in_progress.items == [ids[0].encode(), ids[2].encode(), ids[3].encode()]
    done = await store.list_page(tenant, "vs_file", "vs", ListQuery(limit=10), tag="completed")
    assert done.items == [ids[1].encode()]
    everywhere = [t for t, _ in await store.objects_with_tag("vs_file", "completed") if t == tenant]
    assert everywhere == [tenant]
    assert await store.parents_of(tenant, "vs_file", ids[1]) == ["vs"]
    await store.delete(tenant, "vs_file", "vs", ids[1])
    assert (await store.list_page(tenant, "vs_file", "vs", ListQuery(), tag="completed")).items == []
    assert await store.parents_of(tenant, "vs_file", ids[1]) == []


async def test_one_active_run_per_thread_under_concurrent_claims(store, tenant):
    results = await asyncio.gather(*(store.claim_thread(tenant, "th", f"run_{i}", f"owner-{i}") for i in range(20)))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(r == f"run_{winners[0]}" for r in results if r is not None)
    await store.release_thread(tenant, "th", "run_other")  # not the owner: no effect
    assert await store.active_run(tenant, "th") == f"run_{winners[0]}"
    assert (tenant, "th", f"run_{winners[0]}", f"owner-{winners[0]}") in await store.active_runs()
    assert not await store.take_over(tenant, "th", f"run_{winners[0]}", "thief", old_owner="not-the-owner")
    assert await store.take_over(tenant, "th", f"run_{winners[0]}", "heir", old_owner=f"owner-{winners[0]}")
    assert (tenant, "th", f"run_{winners[0]}", "heir") in await store.active_runs()
    assert not await store.take_over(tenant, "th", "run_other", "heir")  # only the active run can be taken
    await store.release_thread(tenant, "th", f"run_{winners[0]}")
    assert await store.claim_thread(tenant, "th", "run_next") is None


async def test_event_log_append_replay_and_release(store, tenant):
    assert await store.claim_thread(tenant, "th", "run_1") is None
    await store.commit(
        [LogEntry(tenant, "run_1", n, f"e{n}".encode(), [_rec("run", "th", "run_1")]) for n in (1, 2, 3)]
    )
    assert await store.read_events(tenant, "run_1", 1) == [(2, b"e2"), (3, b"e3")]
    assert await store.last_sequence(tenant, "run_1") == 3
    assert await store.read_events(tenant + "x", "run_1", 0) == []
    assert await store.get(tenant, "run", "th", "run_1") == b"run_1"  # the snapshot came with the events
    await store.commit([LogEntry(tenant, "run_1", 4, b"done", release_thread="th")])
    assert await store.active_run(tenant, "th") is None


async def test_delete_thread_removes_everything_under_it(store, tenant):
    await store.put(
        tenant,
        [_rec("thread", "", "th"), _rec("message", "th", "m1"), _rec("run", "th", "r1"), _rec("step", "r1", "s1")],
    )
    await store.commit([LogEntry(tenant, "r1", 1, b"e")])
    assert await store.delete_thread(tenant, "th")
    for kind, parent, i in [("thread", "", "th"), ("message", "th", "m1"), ("run", "th", "r1"), ("step", "r1", "s1")]:
        assert await store.get(tenant, kind, parent, i) is None
    assert await store.read_events(tenant, "r1", 0) == []
    assert not await store.delete_thread(tenant, "th")


async def test_keyword_and_vector_search_and_chunk_removal(store, tenant):
    await store.index_chunks(tenant, "vs", "f1", ["zebras have black and white stripes", "lions live in prides"])
    await store.index_chunks(tenant, "vs", "f2", ["Etna is a volcano on Sicily"])
    hits = await store.search_chunks(tenant, ["vs"], ["zebras", "stripes"], 5)
    assert [(h.file_id, h.chunk_index) for h in hits][:1] == [("f1", 0)]
    assert (await store.search_chunks(tenant, ["vs"], ["volcano"], 5))[0].file_id == "f2"
    assert await store.search_chunks(tenant + "x", ["vs"], ["volcano"], 5) == []
    unit = [np.eye(8, dtype=np.float32)[i].tobytes() for i in range(3)]
    await store.index_chunks(tenant, "vv", "f3", ["a", "b", "c"], unit)
    nearest = await store.search_vectors(tenant, ["vv"], unit[2], 2)
    assert len(nearest) == 2 and nearest[0].chunk_index == 2 and nearest[0].rank > nearest[1].rank
    await store.delete_chunks(tenant, "vs", "f1")
    assert await store.search_chunks(tenant, ["vs"], ["zebras"], 5) == []
    await store.delete_chunks(tenant, "vv")
    assert await store.search_vectors(tenant, ["vv"], unit[2], 2) == []


async def test_heartbeats_lapse(store):
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    await store.heartbeat(owner, 1)
    assert owner in await store.live_owners()
    await asyncio.sleep(2.2)
    assert owner not in await store.live_owners()


async def test_the_last_snapshot_of_an_object_in_one_commit_wins(store, tenant):
    # two writes of one object in one commit: the later must win even when its bytes sort lower
    await store.commit(
        [
            LogEntry(tenant, "run_1", 1, b"e1", [Record("step", "run_1", "step_1", b"\x50" * 10)]),
            LogEntry(tenant, "run_1", 0, b"", [Record("step", "run_1", "step_1", b"\x10" * 20)]),
        ]
    )
    assert await store.get(tenant, "step", "run_1", "step_1") == b"\x10" * 20
    await store.put(tenant, [Record("file", "", "file-1", b"\x50"), Record("file", "", "file-1", b"\x10")])
    assert await store.get(tenant, "file", "", "file-1") == b"\x10"


async def test_large_snapshots_and_real_embedding_sizes_are_stored(store, tenant):
    big = os.urandom(120 * 1024)  # a long message
    await store.commit(
        [LogEntry(tenant, "run_big", n, b"e", [Record("message", "th", f"msg_{n}", big)]) for n in (1, 2)]
    )
    assert await store.get(tenant, "message", "th", "msg_2") == big
    vectors = [np.random.default_rng(i).random(1536, dtype=np.float32) for i in range(12)]
    unit = [(v / np.linalg.norm(v)).astype(np.float32).tobytes() for v in vectors]
    await store.index_chunks(tenant, "vs_big", "f", [f"chunk {i} " * 200 for i in range(12)], unit)
    assert (await store.search_vectors(tenant, ["vs_big"], unit[5], 3))[0].chunk_index == 5


async def test_run_owner_and_cancel_requests(store, tenant):
    assert await store.run_owner(tenant, "th") is None
    await store.claim_thread(tenant, "th", "run_1", "owner-a")
    assert await store.run_owner(tenant, "th") == ("run_1", "owner-a")
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    await store.request_cancel(owner, tenant, "th", "run_1")
    assert await store.cancel_requests(owner) == [(tenant, "th", "run_1")]
    assert await store.cancel_requests(owner + "-other") == []
    await store.clear_cancel_request(owner, tenant, "run_1")
    assert await store.cancel_requests(owner) == []


async def test_read_events_pages_with_a_bound(store, tenant):
    await store.commit([LogEntry(tenant, "run_p", n, f"e{n}".encode()) for n in range(1, 26)])
    first = await store.read_events(tenant, "run_p", 0, limit=10)
    assert [seq for seq, _ in first] == list(range(1, 11))
    rest = await store.read_events(tenant, "run_p", 20, limit=10)
    assert [seq for seq, _ in rest] == list(range(21, 26))


async def _poll(store, tenant, run_id, thread, stop: asyncio.Event, samples: list) -> None:
    """Reads a thread's messages, then the run's events, until told to stop."""
    while not stop.is_set():
        page = await store.list_page(tenant, "message", thread, ListQuery(limit=10, order="asc"))
        events = await store.read_events(tenant, run_id, 0)
        samples.append((len(events), page.items))


async def test_a_big_commit_is_seen_all_or_nothing_by_a_concurrent_reader(store, tenant):
    # ~150 KiB in one commit: 10 events of 10 KiB and three 40 KiB messages of one thread (well
    # over a multi-partition batch's 50 KiB limit). A reader polling meanwhile must see the run's
    # events all or none, the thread's messages all old or all new, and no new message before all
    # the events (a watcher takes a finished run's snapshot to mean its log is complete).
    for round_ in range(6):
        run_id, thread = f"run_{round_}", f"th_{round_}"
        old = [Record("message", thread, f"msg_{i}", bytes([i]) * 40 * 1024) for i in range(3)]
        new = [Record("message", thread, f"msg_{i}", bytes([100 + i]) * 40 * 1024) for i in range(3)]
        await store.put(tenant, old)
        entries = [LogEntry(tenant, run_id, n, os.urandom(10 * 1024)) for n in range(1, 11)]
        entries[-1].records = [*new, Record("run", thread, run_id, b"run")]
        stop, samples = asyncio.Event(), []
        task = asyncio.create_task(_poll(store, tenant, run_id, thread, stop, samples))
        await asyncio.sleep(0.01)
        await store.commit(entries)
        stop.set()
        await task
        assert [seq for seq, _ in await store.read_events(tenant, run_id, 0)] == list(range(1, 11))
        for count, items in samples:
            assert count in (0, 10)
            assert items in ([r.data for r in old], [r.data for r in new])
            assert count == 10 or items == [r.data for r in old]


async def test_concurrent_status_changes_leave_each_object_in_one_tag_list(store, tenant):
    ids = [new_id("file-") for _ in range(20)]
    await store.put(tenant, [Record("vs_file", "vs", i, f"{i}:in_progress".encode(), "in_progress") for i in ids])
    await asyncio.gather(
        *(
            store.put(tenant, [Record("vs_file", "vs", i, f"{i}:{status}".encode(), status)])
            for i in ids
            for status in ("completed", "failed")
        )
    )
    holders: dict[str, list[str]] = {i: [] for i in ids}
    for status in ("in_progress", "completed", "failed"):
        page = await store.list_page(tenant, "vs_file", "vs", ListQuery(limit=100), tag=status)
        for item in page.items:
            object_id, _, stored_status = item.decode().partition(":")
            assert stored_status == status
            holders[object_id].append(status)
    for i in ids:
        truth = (await store.get(tenant, "vs_file", "vs", i)).decode().partition(":")[2]
        assert holders[i] == [truth]


async def test_a_thread_with_an_active_run_is_not_deleted_and_a_deleted_thread_takes_no_run(store, tenant):
    await store.put(tenant, [_rec("thread", "", "th"), _rec("message", "th", "m1")])
    assert await store.claim_thread(tenant, "th", "run_1", "owner-a") is None
    with pytest.raises(ThreadBusy):
        await store.delete_thread(tenant, "th")
    assert await store.get(tenant, "message", "th", "m1") == b"m1"
    await store.release_thread(tenant, "th", "run_1")
    assert await store.delete_thread(tenant, "th")
    assert await store.claim_thread(tenant, "th", "run_2", "owner-a") is not None  # refused
    assert await store.active_run(tenant, "th") is None
    assert all(t != tenant for t, *_ in await store.active_runs())


async def test_a_thread_delete_racing_a_run_claim_never_leaves_a_run_on_a_deleted_thread(store, tenant):
    outcomes = set()
    for n in range(12):
        thread, run_id = f"th_{n}", f"run_{n}"
        await store.put(tenant, [_rec("thread", "", thread), _rec("message", thread, f"m{n}")])
        claimed, deleted = await asyncio.gather(
            store.claim_thread(tenant, thread, run_id, "owner-a"),
            store.delete_thread(tenant, thread),
            return_exceptions=True,
        )
        if claimed is None:  # the run won: the thread and its message stay
            assert isinstance(deleted, ThreadBusy)
            assert await store.get(tenant, "thread", "", thread) is not None
            assert await store.get(tenant, "message", thread, f"m{n}") == f"m{n}".encode()
            assert await store.active_run(tenant, thread) == run_id
            outcomes.add("run")
        else:  # the delete won: nothing is left, and the run was refused
            assert deleted is True
            assert await store.get(tenant, "thread", "", thread) is None
            assert await store.get(tenant, "message", thread, f"m{n}") is None
            assert await store.active_run(tenant, thread) is None
            outcomes.add("delete")
    assert outcomes  # at least one round decided (each round asserts its own outcome)


def _expected_page(universe, query: ListQuery) -> tuple[list[str], bool]:
    """A list page computed the slow way: the ids in order, cut by the cursors, with has_more."""
    ascending = query.order == "asc"
    seq = sorted(universe, reverse=not ascending)
    if query.after:
        seq = [i for i in seq if (i > query.after if ascending else i < query.after)]
    if query.before:
        seq = [i for i in seq if (i < query.before if ascending else i > query.before)]
    page = seq[-query.limit :] if query.before and not query.after else seq[: query.limit]
    return page, len(seq) > query.limit


async def test_top_level_lists_page_across_time_and_odd_ids(store, tenant):
    # A tenant's history: assistants minted days apart (a partition each on Cassandra), a burst
    # within a second, ids of another shape, tagged and untagged, some deleted.
    day = 86_400_000
    minted = [id_at("asst_", 1_700_000_000_000 + n * 3 * day) for n in range(10)]
    minted += [id_at("asst_", 1_700_000_000_000 + 4 * 3 * day + 1, counter=k) for k in range(3)]
    odd = ["asst_1", "asst_zz", "a", "asst_" + "z" * 30]
    everything = sorted(minted + odd)
    tags = {i: "even" if n % 2 == 0 else "" for n, i in enumerate(everything)}
    await store.put(tenant, [Record("assistant", "", i, i.encode(), tags[i]) for i in everything])
    gone = everything[2:4] + everything[-2:-1]
    for i in gone:
        assert await store.delete(tenant, "assistant", "", i)
    live = [i for i in everything if i not in gone]
    cursors = [everything[0], everything[3], everything[7], everything[-1], "asst_"]
    for tag in ("", "even"):
        universe = [i for i in live if not tag or tags[i] == tag]
        for order in ("asc", "desc"):
            for limit in (1, 4, 50):
                windows = [("", "")] + [(c, "") for c in cursors] + [("", c) for c in cursors]
                windows += [(cursors[1], cursors[3]), (cursors[3], cursors[1]), (cursors[0], cursors[2])]
                for after, before in windows:
                    query = ListQuery(limit=limit, order=order, after=after, before=before)
                    page = await store.list_page(tenant, "assistant", "", query, tag=tag)
                    ids, has_more = _expected_page(universe, query)
                    assert ([p.decode() for p in page.items], page.has_more) == (ids, has_more), query
    for i in live:
        assert await store.get(tenant, "assistant", "", i) == i.encode()
        assert await store.parents_of(tenant, "assistant", i) == [""]


async def test_runs_to_check_holds_every_run_of_stopped_processes_and_mine(store, tenant):
    for n, owner in enumerate(["live/n1", "gone/n2", "gone/n3/w", "me/n4", "other-gone/n5"]):
        assert await store.claim_thread(tenant, f"th_{n}", f"run_{n}", owner) is None
    assert await store.take_over(tenant, "th_1", "run_1", "live/n6", old_owner="gone/n2")  # no longer gone's
    await store.release_thread(tenant, "th_4", "run_4")
    found = {r for r in await store.runs_to_check({"live", "me"}, "me") if r[0] == tenant}
    assert {(tenant, "th_2", "run_2", "gone/n3/w"), (tenant, "th_3", "run_3", "me/n4")} <= found
    assert (tenant, "th_4", "run_4", "other-gone/n5") not in found and all(r[3] != "gone/n2" for r in found)
    assert found <= set(await store.active_runs())


async def test_read_many_answers_as_get_and_list_page_do(store, tenant):
    ids = [new_id("msg_") for _ in range(5)]
    await store.put(tenant, [_rec("thread", "", "th"), _rec("assistant", "", "asst_1")])
    await store.put(tenant, [_rec("message", "th", i, tag="run_1" if n % 2 else "") for n, i in enumerate(ids)])
    keys = [Key("thread", "", "th"), Key("assistant", "", "asst_missing"), Key("assistant", "", "asst_1")]
    listings = [
        Listing("message", "th", ListQuery(limit=2, order="asc")),
        Listing("message", "th", ListQuery(limit=10, order="desc", before=ids[1])),
        Listing("message", "th", ListQuery(limit=10, order="asc"), tag="run_1"),
        Listing("step", "run_none", ListQuery()),
    ]
    found, pages = await store.read_many(tenant, keys, listings)
    assert found == [b"th", None, b"asst_1"]
    assert found == [await store.get(tenant, k.kind, k.parent, k.id) for k in keys]
    assert pages == [await store.list_page(tenant, x.kind, x.parent, x.query, x.tag) for x in listings]
    assert pages[0].items == [ids[0].encode(), ids[1].encode()] and pages[0].has_more
    assert pages[2].items == [ids[1].encode(), ids[3].encode()] and pages[3].items == []
    assert await store.read_many(tenant + "x", keys[:1], listings[:1]) == ([None], [Page([], False)])
    assert await store.read_many(tenant, [], []) == ([], [])


def _first_commit(tenant, thread, run_id):
    """A run's first write as the engine makes it: the thread and a message it brings, then its events."""
    brought = LogEntry(tenant, run_id, 0, b"", [_rec("thread", "", thread), _rec("message", thread, f"m_{run_id}")])
    events = [LogEntry(tenant, run_id, n, f"{run_id}:e{n}".encode(), [_rec("run", thread, run_id)]) for n in (1, 2)]
    return [brought, *events]


async def test_claim_and_commit_writes_the_claim_and_the_entries_together(store, tenant):
    assert (
        await store.claim_and_commit(tenant, "th", "run_1", "owner-a/n1", _first_commit(tenant, "th", "run_1")) is None
    )
    assert await store.run_owner(tenant, "th") == ("run_1", "owner-a/n1")
    assert await store.read_events(tenant, "run_1", 0) == [(1, b"run_1:e1"), (2, b"run_1:e2")]
    assert await store.get(tenant, "run", "th", "run_1") == b"run_1"
    assert await store.get(tenant, "message", "th", "m_run_1") == b"m_run_1"
    assert await store.get(tenant, "thread", "", "th") == b"th"
    # a second run on the busy thread is refused and writes nothing
    assert await store.claim_and_commit(tenant, "th", "run_2", "owner-b/n2", _first_commit(tenant, "th", "run_2")) == (
        "run_1"
    )
    assert await store.run_owner(tenant, "th") == ("run_1", "owner-a/n1")
    assert await store.read_events(tenant, "run_2", 0) == []
    assert await store.get(tenant, "run", "th", "run_2") is None
    assert await store.get(tenant, "message", "th", "m_run_2") is None
    assert all(r[:3] != (tenant, "th", "run_2") for r in await store.runs_to_check(set(), "owner-b"))
    # once released, the thread takes the next run
    await store.commit([LogEntry(tenant, "run_1", 3, b"done", release_thread="th")])
    assert await store.claim_and_commit(tenant, "th", "run_3", "owner-a/n3", []) is None
    assert await store.active_run(tenant, "th") == "run_3"


async def test_claim_and_commit_on_a_deleted_thread_is_refused_and_writes_nothing(store, tenant):
    await store.put(tenant, [_rec("thread", "", "th")])
    assert await store.delete_thread(tenant, "th")
    refused = await store.claim_and_commit(tenant, "th", "run_1", "owner-a/n1", _first_commit(tenant, "th", "run_1"))
    assert refused == DELETED_THREAD
    assert await store.get(tenant, "thread", "", "th") is None
    assert await store.get(tenant, "run", "th", "run_1") is None
    assert await store.read_events(tenant, "run_1", 0) == []
    assert await store.active_run(tenant, "th") is None


async def test_concurrent_claim_and_commits_leave_one_run_and_only_its_writes(store, tenant):
    results = await asyncio.gather(
        *(
            store.claim_and_commit(tenant, "th", f"run_{i}", f"owner-{i}/n", _first_commit(tenant, "th", f"run_{i}"))
            for i in range(12)
        )
    )
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    won = f"run_{winners[0]}"
    assert all(r == won for r in results if r is not None)
    assert await store.run_owner(tenant, "th") == (won, f"owner-{winners[0]}/n")
    for i in range(12):
        written = await store.read_events(tenant, f"run_{i}", 0)
        assert (written != []) == (i == winners[0])
        assert (await store.get(tenant, "run", "th", f"run_{i}") is not None) == (i == winners[0])
