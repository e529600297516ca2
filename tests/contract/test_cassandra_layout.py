"""The Cassandra store's layout: the data migration to time-bucketed top-level objects, and
partitions that stay bounded as a tenant creates and deletes many objects (measured by the node
itself: nodetool tablestats after a flush)."""

import asyncio
import json
import math
import os
import pathlib
import uuid

import pytest

from service.ids import id_at
from service.store import ListQuery, Record, open_store
from service.store.cassandra import BUCKET_HOURS, CassandraStore, bucket_of
from tests.conftest import cql

HOSTS = os.environ.get("ASSISTD_TEST_CASSANDRA_HOSTS", "127.0.0.1:9042")
START_SH = pathlib.Path(__file__).parents[2] / "tools" / "cassandra" / "start.sh"
DAY_MS = 86_400_000


def _fresh_url(name: str) -> str:
    return f"cassandra://{HOSTS}/assistd_{name}_{uuid.uuid4().hex[:8]}"


async def _cql(url: str, statement: str) -> list:
    return await asyncio.to_thread(cql, url, statement)


async def _list_all(store, tenant: str, kind: str, order: str, tag: str = "", limit: int = 20) -> list[bytes]:
    items: list[bytes] = []
    after = ""
    while True:
        page = await store.list_page(tenant, kind, "", ListQuery(limit=limit, order=order, after=after), tag)
        items += page.items
        if not page.has_more:
            return items
        after = page.items[-1].partition(b":")[0].decode()


async def test_migration_moves_top_level_objects_into_buckets_and_keeps_newer_writes():
    url = _fresh_url("migrate")
    store = open_store(url)
    await store.open()
    try:
        # The layout before migration 6: a tenant's files in one partition (parent ""), their
        # purpose hints beside them, and one file already rewritten by a migrated replica.
        ids = [id_at("file-", 1_700_000_000_000 + n * 5 * DAY_MS) for n in range(6)] + ["file-odd"]
        for n, i in enumerate(ids):
            purpose = "assistants" if n % 2 else "batch"
            await _cql(
                url,
                "INSERT INTO {keyspace}.objects (tenant, kind, parent, id, tag, data) "
                f"VALUES ('t', 'file', '', '{i}', '{purpose}', textAsBlob('{i}:{purpose}')) USING TIMESTAMP 1000",
            )
            await _cql(
                url,
                "INSERT INTO {keyspace}.objects_by_tag (tenant, kind, parent, tag, id) "
                f"VALUES ('t', 'file', '', '{purpose}', '{i}') USING TIMESTAMP 1000",
            )
        await store.put("t", [Record("file", "", ids[0], f"{ids[0]}:new".encode(), "")])
        await _cql(url, "DELETE FROM {keyspace}.schema_migrations WHERE version = 6")
        await store.close()
        store = open_store(url)
        await store.open()  # applies migration 6 (a second open applies nothing)
        assert await _cql(url, "SELECT id FROM {keyspace}.objects WHERE tenant='t' AND kind='file' AND parent=''") == []
        expected = [ids[0] + ":new"] + [f"{i}:{'assistants' if n % 2 else 'batch'}" for n, i in enumerate(ids)][1:]
        assert [i.decode() for i in await _list_all(store, "t", "file", "asc", limit=2)] == sorted(expected)
        assistants = await _list_all(store, "t", "file", "desc", tag="assistants", limit=1)
        assert [i.decode() for i in assistants] == sorted(
            (e for e in expected if e.endswith("assistants")), reverse=True
        )
        assert await store.get("t", "file", "", ids[0]) == f"{ids[0]}:new".encode()
        buckets = {r.bucket for r in await _cql(url, "SELECT bucket FROM {keyspace}.object_buckets")}
        assert buckets == {bucket_of(i) for i in ids}
    finally:
        await store.close()
        await _cql(url, "DROP KEYSPACE IF EXISTS {keyspace}")


async def _nodetool(*args: str) -> str:
    """nodetool's output, tried once more if it fails (it failed once on a loaded node; both calls are idempotent)."""
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            str(START_SH), "nodetool", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        if process.returncode == 0:
            return out.decode()
    raise AssertionError(f"nodetool {' '.join(args)} failed: {err.decode()} {out.decode()[-2000:]}")


# (kind, id prefix, tag) of each top-level kind the API stores; files are listed by purpose.
TOP_LEVEL = [
    ("assistant", "asst_", ""),
    ("file", "file-", "assistants"),
    ("vector_store", "vs_", ""),
    ("thread", "thread_", ""),
]
PER_KIND = 800  # objects of each kind, minted over a year of the tenant's history
HISTORY_DAYS = 365
KEEP_EVERY = 10  # all others are deleted
PAYLOAD = 200  # bytes of data per object


@pytest.mark.skipif(not HOSTS.startswith("127.0.0.1"), reason="nodetool reaches the single local node only")
async def test_top_level_partitions_and_tombstones_per_read_stay_bounded():
    # The design's bound: a top-level partition holds the ids of one bucket period, so at this
    # tenant's rate (PER_KIND a year) at most `per_bucket` rows, live or deleted; every read of a
    # list scans at most that many tombstones. On one partition per tenant and kind (the layout
    # before buckets) the same history is PER_KIND rows, and a list scans ~KEEP_EVERY tombstones
    # per live row it returns.
    per_bucket = math.ceil(PER_KIND * BUCKET_HOURS / (HISTORY_DAYS * 24)) + 1
    url = _fresh_url("bounds")
    keyspace = url.rsplit("/", 1)[1]
    store = open_store(url)
    assert isinstance(store, CassandraStore)
    await store.open()
    tenant = "tenant-heavy"
    try:
        step = HISTORY_DAYS * DAY_MS // PER_KIND
        for kind, prefix, tag in TOP_LEVEL:
            ids = [id_at(prefix, 1_700_000_000_000 + n * step) for n in range(PER_KIND)]
            assert max(sum(1 for i in ids if bucket_of(i) == b) for b in {bucket_of(i) for i in ids}) <= per_bucket
            for start in range(0, PER_KIND, 100):
                await store.put(
                    tenant,
                    [
                        Record(kind, "", i, i.encode() + b":" + os.urandom(PAYLOAD), tag)
                        for i in ids[start : start + 100]
                    ],
                )
            doomed = [i for n, i in enumerate(ids) if n % KEEP_EVERY]
            for start in range(0, len(doomed), 100):
                await asyncio.gather(*(store.delete(tenant, kind, "", i) for i in doomed[start : start + 100]))
            for order in ("asc", "desc"):  # the reads that meet the tombstones
                listed = await _list_all(store, tenant, kind, order, tag)
                assert len(listed) == PER_KIND // KEEP_EVERY
        await _nodetool("flush", keyspace)
        stats = json.loads(await _nodetool("tablestats", "-F", "json", keyspace))[keyspace]["tables"]
        # Cassandra's histograms report a bucket's upper end (steps of ~20 %, 10 then 12): some slack.
        row_bytes = PAYLOAD + 120  # the data, its id in the key and the row's overheads
        tombstones = math.ceil(per_bucket * 1.2) + 1
        bounds = {
            "objects": (per_bucket * row_bytes * 1.5, tombstones),
            "objects_by_tag": (per_bucket * 100 * 1.5, tombstones),
            "object_parents": (500, 2),
            # one row per bucket that ever held an object of the kind: history / bucket period
            "object_buckets": (math.ceil(HISTORY_DAYS * 24 / BUCKET_HOURS + 1) * 60 * 1.5, 2),
        }
        measured = {
            table: (
                stats[table]["compacted_partition_maximum_bytes"],
                stats[table]["maximum_tombstones_per_slice_last_five_minutes"],
            )
            for table in bounds
        }
        print("largest partition (bytes), most tombstones per read:", measured, "bounds:", bounds)
        for table, (largest, tombstones) in measured.items():
            assert largest <= bounds[table][0], (table, measured[table], bounds[table])
            assert tombstones <= bounds[table][1], (table, measured[table], bounds[table])
    finally:
        await store.close()
        await _cql(url, "DROP KEYSPACE IF EXISTS {keyspace}")


async def test_the_sweep_reads_only_the_runs_of_stopped_processes_and_forgets_them_once_empty():
    url = _fresh_url("sweep")
    store = open_store(url)
    assert isinstance(store, CassandraStore)
    await store.open()
    try:
        await store.heartbeat("alive", 30)
        for n in range(30):
            assert await store.claim_thread("t", f"th_{n}", f"run_{n}", f"alive/n{n}") is None
        assert await store.claim_thread("t", "th_x", "run_x", "dead/n1") is None
        assert await store.claim_thread("t", "th_y", "run_y", "dead/n2") is None
        assert await store.claim_thread("t", "th_x", "run_z", "alive/nz") == "run_x"  # lost: no hint left
        assert await store.runs_to_check({"alive"}, "me") == [
            ("t", "th_x", "run_x", "dead/n1"),
            ("t", "th_y", "run_y", "dead/n2"),
        ]
        # what a sweep does with them: the dead process's runs taken over, one ended
        assert await store.take_over("t", "th_x", "run_x", "alive/nx", old_owner="dead/n1")
        await store.release_thread("t", "th_y", "run_y")
        assert await store.runs_to_check({"alive"}, "me") == []
        holders = {r.owner for r in await _cql(url, "SELECT owner FROM {keyspace}.run_holders")}
        assert holders == {"alive"}  # "dead" held nothing more, and was forgotten
        hints = await _cql(url, "SELECT run_id FROM {keyspace}.runs_by_owner WHERE owner='alive' AND shard=0")
        assert sorted(r.run_id for r in hints) == sorted([f"run_{n}" for n in range(30)] + ["run_x"])
    finally:
        await store.close()
        await _cql(url, "DROP KEYSPACE IF EXISTS {keyspace}")
