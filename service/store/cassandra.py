"""The Store on Cassandra 5.0, for several service replicas over one cluster.

Tables are query-first and keyed by tenant: every list is a range read inside one partition
(ids are time-ordered). "One active run per thread" is a lightweight transaction. Keyword search
reads an inverted index table (a partition per term) and ranks by BM25; vectors live in
`vector<float, N>` tables with an SAI ANN index, one per dimension. The driver's futures are
bridged to asyncio: nothing here blocks the event loop.

What is atomic, and how (a cluster applies a multi-partition logged batch eventually whole, but
refuses one over 50 KiB; a single-partition batch of any size is applied whole and isolated):
- a run's events: the rows of a commit and the run's watermark (`upto`, a static column; readers
  ignore rows above it) go in one single-partition batch, so a reader sees a commit's events all or
  none; the commit's snapshots are written after them, so a reader that sees an object's new state
  (a run completed) finds every event up to it in the log (a watcher ends on that).
- objects: a put or a commit's snapshots are one logged batch when it fits; a bigger one is written
  partition by partition (each whole), index rows before the objects they point to.
- tags: the objects row is the truth; a tag index row is only a hint that list_page checks against
  it, so two racing status changes can leave a stale hint but never an object in two lists.
- deleting a thread first claims it (the same LWT as a run's claim, with a marker that lapses after
  an hour), so no run can start on it meanwhile, and a delete cut short is finished by the next.
- a run's start (claim_and_commit): the claim's LWT, then (only once it holds) the run's first
  commit as above; a conditional write cannot join a multi-partition batch, so a failure between
  the two leaves a claim that the sweep frees (no run) or whose run it ends.
Every statement here is idempotent or (LWTs) checked on retry, so transient failures (a node lost
mid-request) are retried on another coordinator before the caller sees StoreUnavailable.

Tables: partition key, expected size, how it stays bounded. (tests/contract/test_cassandra_layout.py
measures the largest partition and the tombstones per read of the object tables with nodetool.)
- objects ((tenant, kind, parent), id): one object list (a thread's messages, a run's steps, a vector
  store's files). Rows are whole objects (messages up to ~100 KiB). Bounded by what the API lets one
  parent hold; deletes leave one row tombstone each, and delete_thread drops whole partitions.
  A top-level object (a tenant's assistants, files, vector stores, threads, any kind stored with
  parent "") lives in the partition of its id's time bucket: parent "@" + bucket_of(id), the id's
  prefix and first BUCKET_TIME_CHARS time characters, one per 57.8 hours. Such a partition holds
  what the tenant creates of that kind in 57.8 hours, live or deleted (a tenant creating 10 000 files
  a day: ~24 000 rows), so a list's read meets at most that many tombstones; new objects never go
  to an old bucket. Ids of another shape (not minted by service.ids) share bucket "".
- object_buckets ((tenant, kind), bucket): the buckets that ever held a top-level object of the
  kind, ~150 short rows per year of the tenant's activity; never deleted (no tombstones), read
  whole (paged) by each list of that kind. A list reads the buckets that can hold its window in
  order, newest first by default, until its page is full (a sparse tenant: one read per bucket).
- objects_by_tag ((tenant, kind, parent, tag), id): ids only; a sub-list of one objects partition
  (for a top-level kind, of one bucket), so bounded as it is.
- object_parents ((tenant, kind, id), parent): one partition per object, a row per parent holding it.
- objects_tag (SAI on objects.tag): objects_with_tag's cross-tenant question, paged; replaces the
  old (kind, tag) partition that collected a tombstone for every status change.
- active_runs ((tenant, thread_id)): one row per thread, deleted on release (or a deletion marker
  with a one-hour TTL). Single-partition reads only (active_runs(), a whole scan, is for tools).
- runs_by_owner ((owner process, 0), tenant, thread_id, run_id): the active runs of one process
  (as many as it runs at once, a few hundred); a hint written before the claim or take-over and
  deleted after the release or take-over, checked against active_runs by the sweep. A process
  leaves a tombstone per run it ran in its own partition, purged at the next compaction
  (gc_grace_seconds 0: a row a lost delete brings back is a stale hint, dropped when checked).
- run_holders ((shard=0), owner process): the processes that may hold runs, one row per live or
  recently stopped process (written by each claim and heartbeat; a stopped one's row is deleted
  by the sweep once it holds nothing: one tombstone per process lifetime). The sweep reads it and
  the runs_by_owner partitions of the processes not alive, and its own: not the whole ring.
- run_events ((tenant, run_id), seq) + static upto: one run's log, a few hundred to a few thousand
  events of ~100 B; read in pages of EVENT_PAGE; dropped whole with its thread.
- owner_leases ((shard=0), owner): one row per live process (TTL = lease); a dead one's row lapses
  and is purged at the next compaction (gc_grace_seconds 0: nothing is ever deleted, only lapses).
- cancel_requests ((owner), tenant, run_id): TTL'd rows (CANCEL_REQUEST_TTL), read with a LIMIT.
- chunks ((tenant, vector_store_id), file_id, chunk_index), chunk_terms ((tenant, vector_store_id,
  term), file_id, chunk_index), chunk_vectors_N: bounded by one vector store's files; a file's rows
  are deleted with it.
- blob_chunks ((tenant, blob_id), idx): one file's bytes in 1 MiB rows, read one row at a time.
"""

import asyncio
import contextlib
import socket
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlparse

import cassandra
import numpy as np
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionException, ProtocolError
from cassandra.protocol import ErrorMessage, IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from service import ids
from service.errors import ThreadBusy
from service.store import bm25
from service.store.base import (
    DELETED_THREAD,
    ChunkHit,
    Key,
    Listing,
    ListQuery,
    LogEntry,
    Page,
    Record,
    cursor_window,
    owner_process,
    page_of,
)
from service.store.blobs import CHUNK_SIZE
from service.store.errors import StoreError, StoreUnavailable

_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS objects (
         tenant text, kind text, parent text, id text, tag text, data blob,
         PRIMARY KEY ((tenant, kind, parent), id))""",
    """CREATE TABLE IF NOT EXISTS objects_by_tag (
         tenant text, kind text, parent text, tag text, id text, data blob,
         PRIMARY KEY ((tenant, kind, parent, tag), id))""",
    """CREATE TABLE IF NOT EXISTS objects_by_id (
         tenant text, kind text, id text, parent text,
         PRIMARY KEY ((tenant, kind), id, parent))""",
    """CREATE TABLE IF NOT EXISTS tagged_everywhere (
         kind text, tag text, tenant text, parent text, id text,
         PRIMARY KEY ((kind, tag), tenant, parent, id))""",
    """CREATE TABLE IF NOT EXISTS active_runs (
         tenant text, thread_id text, run_id text, PRIMARY KEY ((tenant, thread_id)))""",
    """CREATE TABLE IF NOT EXISTS run_events (
         tenant text, run_id text, seq bigint, data blob, PRIMARY KEY ((tenant, run_id), seq))""",
    """CREATE TABLE IF NOT EXISTS chunks (
         tenant text, vector_store_id text, file_id text, chunk_index int, text text, length int,
         PRIMARY KEY ((tenant, vector_store_id), file_id, chunk_index))""",
    # The keyword index: one partition per (store, term), so a query term is one partition read.
    """CREATE TABLE IF NOT EXISTS chunk_terms (
         tenant text, vector_store_id text, term text, file_id text, chunk_index int, tf int,
         PRIMARY KEY ((tenant, vector_store_id, term), file_id, chunk_index))""",
    """CREATE TABLE IF NOT EXISTS vector_tables (dimensions int PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS blob_chunks (
         tenant text, blob_id text, idx int, data blob, PRIMARY KEY ((tenant, blob_id), idx))""",
    """CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamp)""",
]
# Schema changes in order; each applies once per keyspace and is recorded in schema_migrations.
# A step is a CQL statement or a coroutine function taking the store (a data migration).
MIGRATIONS: dict[int, list] = {
    1: _SCHEMA_V1,
    2: [  # run ownership: who runs a run, and which processes are alive (rows lapse unless renewed)
        "ALTER TABLE active_runs ADD IF NOT EXISTS owner text",
        "CREATE TABLE IF NOT EXISTS owners (owner text PRIMARY KEY)",
    ],
    3: [  # cancels asked of the replica that runs the run: one small partition per replica, rows lapse
        """CREATE TABLE IF NOT EXISTS cancel_requests (
             owner text, tenant text, run_id text, thread_id text, PRIMARY KEY ((owner), tenant, run_id))""",
    ],
    # The cluster-safe layout: the event log's watermark; parents by object (objects_by_id was one
    # partition per tenant and kind, growing forever); tags answered by an SAI index on the objects
    # themselves (tagged_everywhere was one partition per kind and tag collecting tombstones).
    4: [
        "ALTER TABLE run_events ADD IF NOT EXISTS upto bigint static",
        """CREATE TABLE IF NOT EXISTS object_parents (
             tenant text, kind text, id text, parent text, PRIMARY KEY ((tenant, kind, id), parent))""",
        "CREATE INDEX IF NOT EXISTS objects_tag ON objects (tag) USING 'sai'",
        lambda store: store._copy_parents(),
        "DROP TABLE IF EXISTS objects_by_id",
        "DROP TABLE IF EXISTS tagged_everywhere",
    ],
    # Heartbeats in one small partition: reading who is alive was a range scan over the whole
    # ring, which stalls for a range read's timeout while a dead node is not yet known dead (and a
    # stalled sweep delays the heartbeat behind it). A single-partition read tries another replica
    # at once (speculative retry). Rows only ever lapse (TTL), never deleted: no hints needed.
    5: [
        """CREATE TABLE IF NOT EXISTS owner_leases (shard int, owner text, PRIMARY KEY ((shard), owner))
             WITH gc_grace_seconds = 0""",
        "DROP TABLE IF EXISTS owners",
    ],
    # Top-level objects (a tenant's assistants, files, ...) in one partition per time bucket of
    # their ids, instead of one per tenant and kind growing forever; object_buckets lists them.
    6: [
        """CREATE TABLE IF NOT EXISTS object_buckets (
             tenant text, kind text, bucket text, PRIMARY KEY ((tenant, kind), bucket))""",
        lambda store: store._bucket_top_level(),
    ],
    # The sweep reads the runs of stopped processes only: active runs indexed by their owner's
    # process, and the processes that may hold some (the sweep scanned all of active_runs).
    7: [
        # (shard is always 0: a partition key of one text column may not be "", an owner may)
        """CREATE TABLE IF NOT EXISTS runs_by_owner (
             shard int, owner text, tenant text, thread_id text, run_id text,
             PRIMARY KEY ((owner, shard), tenant, thread_id, run_id)) WITH gc_grace_seconds = 0""",
        # (no grace for tombstones: a row a lost delete brings back is a stale hint, checked and dropped)
        """CREATE TABLE IF NOT EXISTS run_holders (shard int, owner text, PRIMARY KEY ((shard), owner))
             WITH gc_grace_seconds = 0""",
        lambda store: store._index_active_runs(),
    ],
}
# A new keyspace gets the current schema at once (each schema change waits for every node to
# agree, a second or more on a busy cluster), then is marked as having had every migration.
CURRENT_SCHEMA = [
    statement
    for statement in _SCHEMA_V1
    if not any(old in statement for old in ("objects_by_id (", "tagged_everywhere (", "schema_migrations ("))
] + [
    "ALTER TABLE active_runs ADD IF NOT EXISTS owner text",
    MIGRATIONS[3][0],
    MIGRATIONS[4][0],
    MIGRATIONS[4][1],
    MIGRATIONS[4][2],
    MIGRATIONS[5][0],
    MIGRATIONS[6][0],
    MIGRATIONS[7][0],
    MIGRATIONS[7][1],
]
CANCEL_REQUEST_TTL = 300
SCHEMA_TIMEOUT_SECONDS = 60
BATCH_BYTES = 40 * 1024  # below Cassandra's default batch_size_fail_threshold (50 KiB, multi-partition batches)
EVENT_PAGE = 1000  # read_events returns at most this many events; the caller reads on from the last
SCAN_PAGE = 500  # rows per page of the scans (sweep, tags across tenants, a thread's children)
DELETED = DELETED_THREAD  # the active_runs marker of a thread being (or just) deleted: claims fail on it
DELETED_TTL = 3600  # the marker outlives any request that saw the thread before it was deleted
RETRIES = 4  # further tries of a statement that failed transiently (0.05 s, doubling: 0.75 s in all)
RETRY_SECONDS = 0.05
RANGE_READ_SECONDS = 2.0  # a page of a read across the ring (the sweep's scan), before it is tried once more
WRITE_CONCURRENCY = 32  # statements in flight at once for a bulk write
LOAD_BYTES = 256 * 1024  # one unlogged single-partition batch of a bulk load
# A top-level object's partition is its id's time bucket: the id's prefix and first 3 time
# characters, a period of 62**8 / 2**20 ms = 57.8 hours (ids.time_prefix). Ids of another shape
# share the bucket "".
BUCKET_TIME_CHARS = 3
BUCKET_HOURS = 62**8 / 2**20 / 3_600_000


def bucket_of(object_id: str) -> str:
    return ids.time_prefix(object_id, BUCKET_TIME_CHARS) or ""


def _home(parent: str, object_id: str) -> str:
    """The parent column of the partition an object lives in: its parent, or for a top-level
    object "@" and its bucket (no parent id starts with "@")."""
    return parent or "@" + bucket_of(object_id)


class _W:
    """One write: its CQL, its values, and the partition it touches (for batching decisions)."""

    __slots__ = ("cql", "params", "partition")

    def __init__(self, cql: str, params: tuple, partition: tuple):
        self.cql, self.params, self.partition = cql, params, partition


def _size(params: Sequence) -> int:
    return sum(len(p) if isinstance(p, (bytes, str)) else 4 * len(p) if isinstance(p, list) else 8 for p in params)


def parse_url(url: str) -> dict[str, Any]:
    """`cassandra://host1,host2:9042/keyspace?consistency=LOCAL_QUORUM&replication_factor=1`."""
    parsed = urlparse(url)
    netloc = parsed.netloc
    port = 9042
    if ":" in netloc.rsplit(",", 1)[-1]:
        netloc, _, port_text = netloc.rpartition(":")
        port = int(port_text)
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    return {
        "hosts": [h for h in netloc.split(",") if h] or ["127.0.0.1"],
        "port": port,
        "keyspace": parsed.path.strip("/") or "assistd",
        "consistency": options.get("consistency", "LOCAL_QUORUM").upper(),
        "replication_factor": int(options.get("replication_factor", "1")),
    }


# Driver exceptions that mean "not now": too few replicas alive or answering in time, no host
# reachable, a dropped or saturated connection, an overloaded or still-starting coordinator.
_TRANSIENT = (
    cassandra.Unavailable,
    cassandra.Timeout,  # ReadTimeout, WriteTimeout
    cassandra.OperationTimedOut,
    NoHostAvailable,
    ConnectionException,
    ConnectionBusy,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
)
CAS_WRITE_UNKNOWN = 0x1700  # the protocol's code; the driver has no class for it
# Everything the driver raises of its own (the rest are ours, e.g. a bug binding a parameter).
_DRIVER = (cassandra.DriverException, NoHostAvailable, ConnectionException, ConnectionBusy, ProtocolError, ErrorMessage)


def store_error(exc: BaseException) -> StoreError:
    """The typed store error for a cassandra-driver exception."""
    if isinstance(exc, StoreError):
        return exc
    # An LWT whose outcome is unknown (contention, or a replica lost mid-proposal): asking again
    # tells (our LWT callers check whether a retry finds their own write in place).
    if isinstance(exc, _TRANSIENT) or (isinstance(exc, ErrorMessage) and exc.code == CAS_WRITE_UNKNOWN):
        error: StoreError = StoreUnavailable(f"Cassandra is unavailable: {exc!r}")
    else:
        error = StoreError(f"Cassandra failed: {exc!r}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Raises the driver's exceptions as StoreError/StoreUnavailable."""
    try:
        yield
    except _DRIVER as exc:
        raise store_error(exc) from exc


async def _wait(future) -> Any:
    """A cassandra-driver ResponseFuture as an awaitable (callbacks run on the driver's thread).
    Its failures arrive as StoreError/StoreUnavailable."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(rows, exc) -> None:  # on the loop
        if done.done():
            return
        if exc is None:
            done.set_result(rows or [])
        else:
            done.set_exception(store_error(exc))

    def ok(rows):  # all rows of the query (paging is off); None for schema changes
        loop.call_soon_threadsafe(settle, rows, None)

    def failed(exc):  # only the driver's own errors come here
        loop.call_soon_threadsafe(settle, None, exc)

    future.add_callbacks(ok, failed)
    return await done


async def _all(awaitables: Sequence) -> None:
    await asyncio.gather(*awaitables)


class CassandraStore:
    shared = True  # several replicas: runs have owners that keep a heartbeat

    def __init__(self, url: str):
        self._config = parse_url(url)
        self._cluster: Cluster | None = None
        self._session: Any = None  # cassandra.cluster.Session once open
        self._prepared: dict[str, PreparedStatement] = {}
        self._vector_tables: set[int] = set()

    # ---- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        config = self._config
        profile = ExecutionProfile(
            consistency_level=ConsistencyLevel.name_to_value[config["consistency"]],
            # LWTs agree within the local data centre, as LOCAL_QUORUM reads and writes do
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        )
        self._cluster = Cluster(
            config["hosts"],
            port=config["port"],
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            protocol_version=5,
            # The driver writes a request in pieces; with Nagle on, a piece after the first waits
            # for the server's delayed ACK (~40 ms): a 50-event commit took 50 ms instead of 2.
            sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        with _translated():  # a one-off blocking handshake, off the loop
            self._session = await asyncio.to_thread(self._cluster.connect)
        self._session.default_fetch_size = None  # our reads are bounded by LIMIT; scans page explicitly
        keyspace = config["keyspace"]
        await self._run(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {config['replication_factor']}}}"
        )
        with _translated():
            await asyncio.to_thread(self._session.set_keyspace, keyspace)
        await self._migrate()
        for row in await self._run("SELECT dimensions FROM vector_tables"):
            self._vector_tables.add(row.dimensions)

    async def _migrate(self) -> None:
        """Applies the migrations this keyspace has not had yet. (Concurrent first starts of several
        replicas may both apply one; every step is safe to repeat.)"""
        await self._run(MIGRATIONS[1][-1])  # schema_migrations itself
        done = {row.version for row in await self._run("SELECT version FROM schema_migrations")}
        if not done and not await self._run(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s AND table_name='objects'",
            (self._config["keyspace"],),
        ):
            for statement in CURRENT_SCHEMA:
                await self._run(statement)
            done = set(MIGRATIONS)
            for version in done:
                await self._run(
                    f"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, toTimestamp(now()))"
                )
        for version, steps in sorted(MIGRATIONS.items()):
            if version in done:
                continue
            for step in steps:
                if callable(step):
                    await step(self)
                else:
                    await self._run(step)
            await self._run(
                f"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, toTimestamp(now()))"
            )

    async def _copy_parents(self) -> None:
        """Migration 4: object_parents from objects_by_id (if this keyspace had it), page by page."""
        if not await self._run(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s AND table_name='objects_by_id'",
            (self._config["keyspace"],),
        ):
            return
        async for row in self._scan("SELECT tenant, kind, id, parent FROM objects_by_id", ()):
            await self._query(
                "INSERT INTO object_parents (tenant, kind, id, parent) VALUES (?, ?, ?, ?)",
                (row.tenant, row.kind, row.id, row.parent),
            )

    async def _bucket_top_level(self) -> None:
        """Migration 6: each tenant's top-level objects (parent "") into their buckets, with their
        tag hints and bucket rows, then the old partitions dropped. Each copy carries the original
        row's write time, so a newer write or delete (a replica already on this layout) wins over
        it, and running this again (cut short, or on two replicas at once) changes nothing."""
        old = [
            (row.tenant, row.kind)
            async for row in self._scan("SELECT DISTINCT tenant, kind, parent FROM objects", ())
            if row.parent == ""
        ]
        for tenant, kind in old:
            writes: list[_W] = []
            async for row in self._scan(
                "SELECT id, tag, data, WRITETIME(data) AS written FROM objects WHERE tenant=? AND kind=? AND parent=''",
                (tenant, kind),
            ):
                record = Record(kind, "", row.id, row.data, row.tag or "")
                for w in [*self._hints(tenant, record), self._object(tenant, record)]:
                    insert, _, values = w.cql.partition(" VALUES ")
                    writes.append(_W(f"{insert} VALUES {values} USING TIMESTAMP ?", (*w.params, row.written), ()))
                if len(writes) >= SCAN_PAGE:
                    await self._bulk(writes)
                    writes = []
            await self._bulk(writes)
        tag_lists = [
            (row.tenant, row.kind, row.tag)
            async for row in self._scan("SELECT DISTINCT tenant, kind, parent, tag FROM objects_by_tag", ())
            if row.parent == ""
        ]
        await self._bulk(
            [
                _W("DELETE FROM objects_by_tag WHERE tenant=? AND kind=? AND parent='' AND tag=?", key, ())
                for key in tag_lists
            ]
            + [_W("DELETE FROM objects WHERE tenant=? AND kind=? AND parent=''", key, ()) for key in old]
        )

    async def _index_active_runs(self) -> None:
        """Migration 7: runs_by_owner and run_holders from active_runs."""
        async for row in self._scan("SELECT tenant, thread_id, run_id, owner FROM active_runs", ()):
            if row.run_id != DELETED:
                await self._hold(row.owner or "", row.tenant, row.thread_id, row.run_id)

    async def close(self) -> None:
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)
            self._cluster = self._session = None

    async def _execute(
        self, statement, params: Sequence | None = None, request_seconds: float | None = None, paging_state=None
    ) -> list:
        """THE place every statement runs: driver errors, raised at once or later, come out typed.
        A transient failure (a coordinator lost mid-request, a timeout, too few replicas for now) is
        tried again after a pause, on whichever coordinator the driver picks next; every statement
        in this module may be: it is idempotent, or an LWT whose caller checks the outcome."""
        rows, _ = await self._execute_page(statement, params, request_seconds, paging_state)
        return rows

    async def _execute_page(
        self, statement, params=None, request_seconds=None, paging_state=None, retries: int = RETRIES
    ) -> tuple[list, Any]:
        """Rows and the paging state of the next page (None at the end)."""
        for attempt in range(retries + 1):
            try:
                with _translated():
                    options: dict[str, Any] = {}
                    if request_seconds is not None:
                        options["timeout"] = request_seconds
                    if paging_state is not None:
                        options["paging_state"] = paging_state
                    future = self._session.execute_async(statement, params, **options)
                rows = list(await _wait(future))
                return rows, future._paging_state if future.has_more_pages else None
            except StoreUnavailable:
                if attempt == retries:
                    raise
                await asyncio.sleep(RETRY_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    async def _run(self, cql: str, params: Sequence = ()) -> list:
        """An unprepared statement: schema changes and one-offs. Schema changes wait for every node
        to agree and can take well over the driver's default 10 s on a busy node."""
        return await self._execute(cql, params, request_seconds=SCHEMA_TIMEOUT_SECONDS)

    async def _statement(self, cql: str) -> PreparedStatement:
        """The prepared statement for cql, prepared once (off the event loop: it is a round trip)."""
        prepared = self._prepared.get(cql)
        if prepared is None:
            with _translated():
                prepared = self._prepared[cql] = await asyncio.to_thread(self._session.prepare, cql)
        return prepared

    async def _query(self, cql: str, params: Sequence = ()) -> list:
        return await self._execute(await self._statement(cql), params)

    async def _scan(self, cql: str, params: Sequence, page: int = SCAN_PAGE, range_read: bool = False):
        """The rows of a read that may be long, one bounded page (one round trip) at a time. A read
        across the ring (range_read) waits for the slowest replica it picked, and for a node that
        died a moment ago that is the server's whole range timeout (10 s): give up sooner, once
        again, and let the caller try later (the sweep does, every lease/3)."""
        state = None
        timeout, retries = (RANGE_READ_SECONDS, 1) if range_read else (None, RETRIES)
        while True:
            bound = (await self._statement(cql)).bind(params)
            bound.fetch_size = page
            rows, state = await self._execute_page(bound, None, timeout, state, retries)
            for row in rows:
                yield row
            if state is None:
                return

    async def _batch(self, writes: Sequence[_W], logged: bool) -> None:
        """Writes as one batch (a lone statement goes as itself)."""
        if len(writes) == 1:
            await self._query(writes[0].cql, writes[0].params)
            return
        batch = BatchStatement(batch_type=BatchType.LOGGED if logged else BatchType.UNLOGGED)
        for w in writes:
            batch.add(await self._statement(w.cql), w.params)
        await self._execute(batch)

    async def _per_partition(self, writes: Sequence[_W]) -> None:
        """Each partition's writes as one single-partition batch (whole and isolated, any size), all at once."""
        groups: dict[tuple, list[_W]] = defaultdict(list)
        for w in writes:
            groups[w.partition].append(w)
        await asyncio.gather(*(self._batch(group, logged=False) for group in groups.values()))

    async def _atomic(self, *phases: Sequence[_W]) -> None:
        """All the writes as one logged batch when it fits under the batch limit (or they all touch
        one partition); else phase after phase, each partition whole. Phases put what points before
        what is pointed at, so a reader of a split write meets dangling hints, never missing rows."""
        writes = [w for phase in phases for w in phase]
        if not writes:
            return
        if len({w.partition for w in writes}) == 1:
            await self._batch(writes, logged=False)
        elif sum(_size(w.params) for w in writes) <= BATCH_BYTES:
            await self._batch(writes, logged=True)
        else:
            for phase in phases:
                if phase:
                    await self._per_partition(phase)

    async def _load(self, writes: Sequence[_W]) -> None:
        """Many writes (a file's chunks and postings): per partition, in unlogged batches of up to
        LOAD_BYTES, WRITE_CONCURRENCY batches in flight."""
        batches: list[list[_W]] = []
        groups: dict[tuple, list[_W]] = defaultdict(list)
        for w in writes:
            groups[w.partition].append(w)
        for group in groups.values():
            size = LOAD_BYTES
            for w in group:
                if size + _size(w.params) > LOAD_BYTES:
                    batches.append([])
                    size = 0
                batches[-1].append(w)
                size += _size(w.params)
        for start in range(0, len(batches), WRITE_CONCURRENCY):
            await asyncio.gather(*(self._batch(b, logged=False) for b in batches[start : start + WRITE_CONCURRENCY]))

    async def _bulk(self, writes: Sequence[_W]) -> None:
        """Independent idempotent writes, WRITE_CONCURRENCY at a time."""
        for start in range(0, len(writes), WRITE_CONCURRENCY):
            await asyncio.gather(*(self._query(w.cql, w.params) for w in writes[start : start + WRITE_CONCURRENCY]))

    # ---- objects --------------------------------------------------------------------------

    async def get(self, tenant: str, kind: str, parent: str, object_id: str) -> bytes | None:
        rows = await self._query(
            "SELECT data FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
            (tenant, kind, _home(parent, object_id), object_id),
        )
        return rows[0].data if rows else None

    async def _old_tag(self, tenant: str, record: Record) -> str | None:
        rows = await self._query(
            "SELECT tag FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
            (tenant, record.kind, _home(record.parent, record.id), record.id),
        )
        return (rows[0].tag or "") if rows else None

    @staticmethod
    def _hints(tenant: str, r: Record) -> list[_W]:
        """The rows that find an object from elsewhere: its parents, its tag's list, and (top-level)
        its bucket in the list of buckets."""
        writes = [
            _W(
                "INSERT INTO object_parents (tenant, kind, id, parent) VALUES (?, ?, ?, ?)",
                (tenant, r.kind, r.id, r.parent),
                ("object_parents", tenant, r.kind, r.id),
            )
        ]
        home = _home(r.parent, r.id)
        if not r.parent:
            writes.append(
                _W(
                    "INSERT INTO object_buckets (tenant, kind, bucket) VALUES (?, ?, ?)",
                    (tenant, r.kind, home[1:]),
                    ("object_buckets", tenant, r.kind),
                )
            )
        if r.tag:
            writes.append(
                _W(
                    "INSERT INTO objects_by_tag (tenant, kind, parent, tag, id) VALUES (?, ?, ?, ?, ?)",
                    (tenant, r.kind, home, r.tag, r.id),
                    ("objects_by_tag", tenant, r.kind, home, r.tag),
                )
            )
        return writes

    @staticmethod
    def _object(tenant: str, r: Record) -> _W:
        home = _home(r.parent, r.id)
        return _W(
            "INSERT INTO objects (tenant, kind, parent, id, tag, data) VALUES (?, ?, ?, ?, ?, ?)",
            (tenant, r.kind, home, r.id, r.tag, r.data),
            ("objects", tenant, r.kind, home),
        )

    @staticmethod
    def _untag(tenant: str, kind: str, parent: str, object_id: str, tag: str) -> _W:
        home = _home(parent, object_id)
        return _W(
            "DELETE FROM objects_by_tag WHERE tenant=? AND kind=? AND parent=? AND tag=? AND id=?",
            (tenant, kind, home, tag, object_id),
            ("objects_by_tag", tenant, kind, home, tag),
        )

    async def put(self, tenant: str, records: Sequence[Record]) -> None:
        latest = list({(r.kind, r.parent, r.id): r for r in records}.values())  # one write per object (see commit)
        old_tags = await asyncio.gather(*(self._old_tag(tenant, r) for r in latest))
        hints = [w for r in latest for w in self._hints(tenant, r)]
        objects = [self._object(tenant, r) for r in latest]
        # The old tag's hint goes last: a racing put may have read the same old tag, and whichever
        # objects row wins, list_page drops the other's hint (see _tagged_rows).
        stale = [
            self._untag(tenant, r.kind, r.parent, r.id, old)
            for r, old in zip(latest, old_tags, strict=True)
            if old and old != r.tag
        ]
        await self._atomic(hints, objects, stale)

    async def delete(self, tenant: str, kind: str, parent: str, object_id: str) -> bool:
        rows = await self._query(
            "SELECT tag FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
            (tenant, kind, _home(parent, object_id), object_id),
        )
        if not rows:
            return False
        await self._atomic(self._removal(tenant, kind, parent, object_id, rows[0].tag))
        return True

    def _removal(self, tenant: str, kind: str, parent: str, object_id: str, tag: str | None) -> list[_W]:
        # (a top-level object's bucket stays listed: a bucket row is never deleted, see object_buckets)
        home = _home(parent, object_id)
        writes = [
            _W(
                "DELETE FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
                (tenant, kind, home, object_id),
                ("objects", tenant, kind, home),
            ),
            _W(
                "DELETE FROM object_parents WHERE tenant=? AND kind=? AND id=? AND parent=?",
                (tenant, kind, object_id, parent),
                ("object_parents", tenant, kind, object_id),
            ),
        ]
        return writes + ([self._untag(tenant, kind, parent, object_id, tag)] if tag else [])

    async def list_page(self, tenant: str, kind: str, parent: str, query: ListQuery, tag: str = "") -> Page:
        conditions, values, scan_ascending, backwards = cursor_window(query)
        window = (conditions, values, scan_ascending)
        want = query.limit + 1
        if parent:
            rows = await self._partition_rows(tenant, kind, parent, tag, window, want)
        else:
            rows = await self._bucketed_rows(tenant, kind, tag, window, want)
        return page_of([data for _, data in rows], query, backwards)

    async def read_many(
        self, tenant: str, keys: Sequence[Key], listings: Sequence[Listing] = ()
    ) -> tuple[list[bytes | None], list[Page]]:
        # all the reads in flight at once: the latency of one round trip
        gets = asyncio.gather(*(self.get(tenant, key.kind, key.parent, key.id) for key in keys))
        lists = asyncio.gather(*(self.list_page(tenant, x.kind, x.parent, x.query, x.tag) for x in listings))
        found, pages = await asyncio.gather(gets, lists)
        return list(found), list(pages)

    async def _bucketed_rows(self, tenant: str, kind: str, tag: str, window: tuple, want: int) -> list:
        """Up to `want` top-level objects in scan order, bucket after bucket. A bucket is a prefix
        of its ids, so buckets sort as their ids do; the bucket "" (ids of another shape) does
        not, and is merged in."""
        conditions, values, scan_ascending = window
        bounds = dict(zip((c.split()[1] for c in conditions), values, strict=True))  # ">" / "<" -> id
        low, high = bounds.get(">", ""), bounds.get("<", "")
        buckets = [
            row.bucket
            async for row in self._scan("SELECT bucket FROM object_buckets WHERE tenant=? AND kind=?", (tenant, kind))
        ]
        # a bucket's ids all lie in [bucket, bucket + "\uffff..."): skip the buckets wholly outside the window
        ordered = [b for b in buckets if b and not b < low[: len(b)] and not (high and b >= high)]
        found: list = []
        for bucket in sorted(ordered, reverse=not scan_ascending):
            if len(found) >= want:
                break
            found += await self._partition_rows(tenant, kind, "@" + bucket, tag, window, want - len(found))
        if "" in buckets:
            found += await self._partition_rows(tenant, kind, "@", tag, window, want)
            found.sort(key=lambda row: row[0], reverse=not scan_ascending)
        return found[:want]

    async def _partition_rows(self, tenant: str, kind: str, home: str, tag: str, window: tuple, want: int) -> list:
        """Up to `want` (id, data) of one partition's objects within the window, in scan order."""
        if tag:
            return await self._tagged_rows(tenant, kind, home, tag, window, want)
        conditions, values, scan_ascending = window
        rows = await self._query(
            f"SELECT id, data FROM objects WHERE {' AND '.join(['tenant=?', 'kind=?', 'parent=?', *conditions])} "
            f"ORDER BY id {'ASC' if scan_ascending else 'DESC'} LIMIT ?",
            (tenant, kind, home, *values, want),
        )
        return [(row.id, row.data) for row in rows]

    async def _tagged_rows(self, tenant: str, kind: str, home: str, tag: str, window: tuple, want: int) -> list:
        """Up to `want` (id, data) with the tag, in scan order: ids from the tag's hints, each kept
        only if its object (the truth) still has that tag. A hint left by a lost race is skipped."""
        conditions, values, scan_ascending = window
        bounds = dict(zip((c.split()[1] for c in conditions), values, strict=True))  # ">" / "<" -> id
        start = ">" if scan_ascending else "<"
        found: list = []
        while len(found) < want:
            more = want - len(found)
            where = ["tenant=?", "kind=?", "parent=?", "tag=?", *(f"id {op} ?" for op in bounds)]
            ids = [
                row.id
                for row in await self._query(
                    f"SELECT id FROM objects_by_tag WHERE {' AND '.join(where)} "
                    f"ORDER BY id {'ASC' if scan_ascending else 'DESC'} LIMIT ?",
                    (tenant, kind, home, tag, *bounds.values(), more),
                )
            ]
            if not ids:
                break
            truth = {
                row.id: row
                for row in await self._query(
                    "SELECT id, tag, data FROM objects WHERE tenant=? AND kind=? AND parent=? AND id IN ?",
                    (tenant, kind, home, ids),
                )
            }
            found += [(i, truth[i].data) for i in ids if i in truth and truth[i].tag == tag]
            if len(ids) < more:
                break
            bounds[start] = ids[-1]
        return found

    async def parents_of(self, tenant: str, kind: str, object_id: str) -> list[str]:
        rows = await self._query(
            "SELECT parent FROM object_parents WHERE tenant=? AND kind=? AND id=?", (tenant, kind, object_id)
        )
        return [row.parent for row in rows]

    async def objects_with_tag(self, kind: str, tag: str) -> list[tuple[str, bytes]]:
        found = []
        async for row in self._scan(
            "SELECT tenant, tag, data FROM objects WHERE kind=? AND tag=? ALLOW FILTERING", (kind, tag)
        ):
            found.append((row.tenant, row.data))
        return found

    async def _children(self, tenant: str, kind: str, parent: str) -> list:
        return [
            row
            async for row in self._scan(
                "SELECT id, tag FROM objects WHERE tenant=? AND kind=? AND parent=?", (tenant, kind, parent)
            )
        ]

    async def delete_thread(self, tenant: str, thread_id: str) -> bool:
        """Claims the thread for deletion (so no run can start on it), then drops what is under it,
        partition by partition, and the thread last: a delete cut short leaves the thread, and the
        next delete of it finishes the job."""
        if await self.get(tenant, "thread", "", thread_id) is None:
            return False
        rows = await self._query(
            f"INSERT INTO active_runs (tenant, thread_id, run_id, owner) VALUES (?, ?, ?, '') IF NOT EXISTS USING TTL {DELETED_TTL}",
            (tenant, thread_id, DELETED),
        )
        if not rows[0].applied and rows[0].run_id != DELETED:
            raise ThreadBusy(f"Cannot delete thread {thread_id} while run {rows[0].run_id} is active.")
        writes: list[_W] = []
        runs = await self._children(tenant, "run", thread_id)
        for run in runs:
            for step in await self._children(tenant, "step", run.id):
                writes += self._removal(tenant, "step", run.id, step.id, step.tag)[1:]  # the partition goes below
            writes += [
                _W("DELETE FROM objects WHERE tenant=? AND kind='step' AND parent=?", (tenant, run.id), ()),
                _W("DELETE FROM run_events WHERE tenant=? AND run_id=?", (tenant, run.id), ()),
            ]
            writes += self._removal(tenant, "run", thread_id, run.id, run.tag)[1:]
        for message in await self._children(tenant, "message", thread_id):
            writes += self._removal(tenant, "message", thread_id, message.id, message.tag)[1:]
        writes += [
            _W("DELETE FROM objects WHERE tenant=? AND kind='run' AND parent=?", (tenant, thread_id), ()),
            _W("DELETE FROM objects WHERE tenant=? AND kind='message' AND parent=?", (tenant, thread_id), ()),
        ]
        await self._bulk(writes)
        await self._atomic(self._removal(tenant, "thread", "", thread_id, ""))
        return True

    # ---- runs -----------------------------------------------------------------------------

    async def _hold(self, owner: str, tenant: str, thread_id: str, run_id: str) -> None:
        """Indexes a run under its owner's process before the claim or take-over that makes it
        theirs (a hint: runs_to_check checks it against active_runs). Both rows are in place
        before the run is, which is all the sweep needs."""
        process = owner_process(owner)
        await _all(
            [
                self._query("INSERT INTO run_holders (shard, owner) VALUES (0, ?)", (process,)),
                self._query(
                    "INSERT INTO runs_by_owner (shard, owner, tenant, thread_id, run_id) VALUES (0, ?, ?, ?, ?)",
                    (process, tenant, thread_id, run_id),
                ),
            ]
        )

    async def _unhold(self, owner: str, tenant: str, thread_id: str, run_id: str, timestamp: int | None = None) -> None:
        using = "USING TIMESTAMP ? " if timestamp is not None else ""
        await self._query(
            f"DELETE FROM runs_by_owner {using}WHERE owner=? AND shard=0 AND tenant=? AND thread_id=? AND run_id=?",
            (*([timestamp] if timestamp is not None else []), owner_process(owner), tenant, thread_id, run_id),
        )

    @staticmethod
    def _holds(row: Any, owner: str, run_id: str) -> bool:
        """Whether an active_runs row shows run_id held by owner's process."""
        return getattr(row, "run_id", None) == run_id and owner_process(getattr(row, "owner", None) or "") == (
            owner_process(owner)
        )

    async def claim_thread(self, tenant: str, thread_id: str, run_id: str, owner: str = "") -> str | None:
        await self._hold(owner, tenant, thread_id, run_id)
        rows = await self._query(
            "INSERT INTO active_runs (tenant, thread_id, run_id, owner) VALUES (?, ?, ?, ?) IF NOT EXISTS",
            (tenant, thread_id, run_id, owner),
        )
        row = rows[0]
        if row.applied or (row.run_id == run_id and (getattr(row, "owner", None) or "") == owner):
            return None  # (the second: a retry of ours whose first try was applied)
        if not self._holds(row, owner, run_id):
            await self._unhold(owner, tenant, thread_id, run_id)
        return row.run_id

    async def claim_and_commit(
        self, tenant: str, thread_id: str, run_id: str, owner: str, entries: Sequence[LogEntry]
    ) -> str | None:
        # A conditional write cannot share a batch with other partitions: the claim goes first
        # (refused, nothing else is written), then the commit; a failure between leaves the claim
        # to the sweep (see the Store protocol).
        active = await self.claim_thread(tenant, thread_id, run_id, owner)
        if active is None:
            await self.commit(entries)
        return active

    async def take_over(
        self, tenant: str, thread_id: str, run_id: str, new_owner: str, old_owner: str | None = None
    ) -> bool:
        await self._hold(new_owner, tenant, thread_id, run_id)
        if old_owner is None:
            rows = await self._query(
                "UPDATE active_runs SET owner=? WHERE tenant=? AND thread_id=? IF run_id=?",
                (new_owner, tenant, thread_id, run_id),
            )
        else:
            rows = await self._query(
                "UPDATE active_runs SET owner=? WHERE tenant=? AND thread_id=? IF run_id=? AND owner=?",
                (new_owner, tenant, thread_id, run_id, old_owner),
            )
        row = rows[0]
        # Owners are unique tokens: finding new_owner already there means a retry of ours was applied.
        taken = bool(row.applied) or (
            getattr(row, "run_id", None) == run_id and getattr(row, "owner", None) == new_owner
        )
        if taken and old_owner is not None and owner_process(old_owner) != owner_process(new_owner):
            await self._unhold(old_owner, tenant, thread_id, run_id)
        elif not taken and not self._holds(row, new_owner, run_id):
            await self._unhold(new_owner, tenant, thread_id, run_id)
        return taken

    async def run_owner(self, tenant: str, thread_id: str) -> tuple[str, str] | None:
        rows = await self._query(
            "SELECT run_id, owner FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)
        )
        return (rows[0].run_id, rows[0].owner or "") if rows and rows[0].run_id != DELETED else None

    async def request_cancel(self, owner: str, tenant: str, thread_id: str, run_id: str) -> None:
        await self._query(
            f"INSERT INTO cancel_requests (owner, tenant, run_id, thread_id) VALUES (?, ?, ?, ?) USING TTL {CANCEL_REQUEST_TTL}",
            (owner, tenant, run_id, thread_id),
        )

    async def cancel_requests(self, owner: str) -> list[tuple[str, str, str]]:
        rows = await self._query(
            "SELECT tenant, thread_id, run_id FROM cancel_requests WHERE owner=? LIMIT ?", (owner, SCAN_PAGE)
        )
        return [(r.tenant, r.thread_id, r.run_id) for r in rows]

    async def clear_cancel_request(self, owner: str, tenant: str, run_id: str) -> None:
        await self._query(
            "DELETE FROM cancel_requests WHERE owner=? AND tenant=? AND run_id=?", (owner, tenant, run_id)
        )

    async def heartbeat(self, owner: str, lease_seconds: int) -> None:
        await self._query(
            f"INSERT INTO owner_leases (shard, owner) VALUES (0, ?) USING TTL {int(lease_seconds)}", (owner,)
        )
        # Listed as a possible holder while alive: restores a row a sweep removed as it claimed a run.
        await self._query("INSERT INTO run_holders (shard, owner) VALUES (0, ?)", (owner,))

    async def live_owners(self) -> set[str]:
        return {row.owner async for row in self._scan("SELECT owner FROM owner_leases WHERE shard=0", ())}

    async def active_run(self, tenant: str, thread_id: str) -> str | None:
        rows = await self._query("SELECT run_id FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id))
        return rows[0].run_id if rows and rows[0].run_id != DELETED else None

    async def release_thread(self, tenant: str, thread_id: str, run_id: str) -> None:
        held = await self._query(
            "SELECT run_id, owner FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)
        )
        rows = await self._query(
            "DELETE FROM active_runs WHERE tenant=? AND thread_id=? IF run_id=?", (tenant, thread_id, run_id)
        )
        if rows[0].applied and held and held[0].run_id == run_id:
            await self._unhold(held[0].owner or "", tenant, thread_id, run_id)

    async def runs_to_check(self, alive: set[str], mine: str) -> list[tuple[str, str, str, str]]:
        """Reads the index partitions of the processes in run_holders that are not alive, and
        mine's, each hint checked against active_runs. A stopped process's stale hints, and then
        the process itself once it holds nothing, are deleted as of the start of this call, so a
        process that comes back and claims a run meanwhile keeps its (later) rows."""
        started = time.time_ns() // 1000  # microseconds, as the driver's write timestamps
        holders = {row.owner async for row in self._scan("SELECT owner FROM run_holders WHERE shard=0", ())}
        found = []
        for process in sorted((holders - alive) | {mine}):
            stopped, holds = process not in alive, 0
            hints = [
                row
                async for row in self._scan(
                    "SELECT tenant, thread_id, run_id FROM runs_by_owner WHERE owner=? AND shard=0", (process,)
                )
            ]
            for start in range(0, len(hints), WRITE_CONCURRENCY):
                page = hints[start : start + WRITE_CONCURRENCY]
                truths = await asyncio.gather(
                    *(
                        self._query(
                            "SELECT run_id, owner FROM active_runs WHERE tenant=? AND thread_id=?",
                            (hint.tenant, hint.thread_id),
                        )
                        for hint in page
                    )
                )
                for hint, truth in zip(page, truths, strict=True):
                    if truth and self._holds(truth[0], process, hint.run_id):
                        found.append((hint.tenant, hint.thread_id, hint.run_id, truth[0].owner or ""))
                        holds += 1
                    elif stopped:
                        await self._unhold(process, hint.tenant, hint.thread_id, hint.run_id, started)
            if stopped and not holds:
                await self._query(
                    "DELETE FROM run_holders USING TIMESTAMP ? WHERE shard=0 AND owner=?", (started, process)
                )
        return found

    async def active_runs(self) -> list[tuple[str, str, str, str]]:
        return [
            (r.tenant, r.thread_id, r.run_id, r.owner or "")
            async for r in self._scan("SELECT tenant, thread_id, run_id, owner FROM active_runs", (), range_read=True)
            if r.run_id != DELETED
        ]

    async def commit(self, entries: Sequence[LogEntry]) -> None:
        """Per run: its events in one single-partition batch with the new watermark (whole and
        isolated, whatever its size); then the snapshots; then the threads of ended runs are
        released. A commit cut short is written again whole by the caller (all idempotent)."""
        events: dict[tuple[str, str], list[LogEntry]] = defaultdict(list)
        latest: dict[tuple, tuple[str, Record]] = {}
        releases = []
        for entry in entries:
            key = (entry.tenant, entry.run_id)
            if entry.sequence:
                events[key].append(entry)
            for record in entry.records:
                # Writes in one batch share a timestamp, and then the larger value wins, not the
                # later one: write each object once, as its last snapshot in this commit.
                latest[(entry.tenant, record.kind, record.parent, record.id)] = (entry.tenant, record)
            if entry.release_thread:
                releases.append((entry.tenant, entry.release_thread, entry.run_id))
        logs = []
        for (tenant, run_id), logged in events.items():
            partition = ("run_events", tenant, run_id)
            rows = [
                _W(
                    "INSERT INTO run_events (tenant, run_id, seq, data) VALUES (?, ?, ?, ?)",
                    (tenant, run_id, e.sequence, e.data),
                    partition,
                )
                for e in logged
            ]
            last = max(e.sequence for e in logged)
            rows.append(
                _W("UPDATE run_events SET upto=? WHERE tenant=? AND run_id=?", (last, tenant, run_id), partition)
            )
            logs.append(self._batch(rows, logged=False))
        # The events first: a reader that sees a snapshot (say, a run completed) finds every event
        # up to it in the log, which is how a watcher knows it has read a finished run to the end.
        await _all(logs)
        if latest:  # runs, steps, messages, threads: their tags never change, so no old tag to drop
            records = list(latest.values())
            await self._atomic(
                [w for tenant, r in records for w in self._hints(tenant, r)],
                [self._object(tenant, r) for tenant, r in records],
            )
        for tenant, thread_id, run_id in releases:  # a conditional write cannot join a multi-partition batch
            await self.release_thread(tenant, thread_id, run_id)

    async def last_sequence(self, tenant: str, run_id: str) -> int:
        rows = await self._query(
            "SELECT upto, seq FROM run_events WHERE tenant=? AND run_id=? ORDER BY seq DESC LIMIT 1", (tenant, run_id)
        )
        if not rows:
            return 0
        return rows[0].upto if rows[0].upto is not None else (rows[0].seq or 0)  # no watermark: an older log

    async def read_events(
        self, tenant: str, run_id: str, after_sequence: int, limit: int = EVENT_PAGE
    ) -> list[tuple[int, bytes]]:
        rows = await self._query(
            "SELECT upto, seq, data FROM run_events WHERE tenant=? AND run_id=? AND seq > ? LIMIT ?",
            (tenant, run_id, after_sequence, limit),
        )
        # Rows above the watermark belong to a commit still being written (or cut short and to be
        # written again): not part of the log yet.
        return [(row.seq, row.data) for row in rows if row.upto is None or row.seq <= row.upto]

    # ---- chunks and search ------------------------------------------------------------------

    async def _known_vector_tables(self) -> set[int]:
        """The vector tables any replica has made (re-read: another replica may have added one)."""
        for row in await self._run("SELECT dimensions FROM vector_tables"):
            self._vector_tables.add(row.dimensions)
        return self._vector_tables

    async def _vector_table(self, dimensions: int) -> str:
        name = f"chunk_vectors_{dimensions}"
        if dimensions not in self._vector_tables:
            await self._run(
                f"CREATE TABLE IF NOT EXISTS {name} (tenant text, vector_store_id text, file_id text, chunk_index int, "
                f"text text, vector vector<float, {dimensions}>, PRIMARY KEY ((tenant, vector_store_id), file_id, chunk_index))"
            )
            await self._run(
                f"CREATE INDEX IF NOT EXISTS {name}_ann ON {name} (vector) USING 'sai' "
                "WITH OPTIONS = {'similarity_function': 'COSINE'}"
            )
            await self._until_queryable(f"{name}_ann")
            await self._run(f"INSERT INTO vector_tables (dimensions) VALUES ({dimensions})")
            self._vector_tables.add(dimensions)
        return name

    async def _until_queryable(self, index: str) -> None:
        """Waits until a new SAI index answers queries: right after CREATE INDEX it is still being
        built, and a search then fails with INDEX_NOT_AVAILABLE."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SCHEMA_TIMEOUT_SECONDS
        while loop.time() < deadline:
            rows = await self._run(
                "SELECT is_queryable FROM system_views.sai_column_indexes WHERE keyspace_name=%s AND index_name=%s",
                (self._config["keyspace"], index),
            )
            if rows and rows[0].is_queryable:
                return
            await asyncio.sleep(0.1)
        raise StoreUnavailable(f"The vector index {index} is still being built; try again shortly.")

    async def index_chunks(
        self, tenant: str, vector_store_id: str, file_id: str, chunks: Sequence[str], vectors: Sequence[bytes] = ()
    ) -> None:
        await self.delete_chunks(tenant, vector_store_id, file_id)
        statements: list[_W] = []
        for i, text in enumerate(chunks):
            counts = bm25.term_counts(text)
            statements.append(
                _W(
                    "INSERT INTO chunks (tenant, vector_store_id, file_id, chunk_index, text, length) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, file_id, i, text, sum(counts.values())),
                    ("chunks", tenant, vector_store_id),
                )
            )
            statements += [
                _W(
                    "INSERT INTO chunk_terms (tenant, vector_store_id, term, file_id, chunk_index, tf) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, term, file_id, i, tf),
                    ("chunk_terms", tenant, vector_store_id, term),
                )
                for term, tf in counts.items()
            ]
        if vectors:
            floats = [np.frombuffer(v, dtype=np.float32).tolist() for v in vectors]
            table = await self._vector_table(len(floats[0]))
            statements += [
                _W(
                    f"INSERT INTO {table} (tenant, vector_store_id, file_id, chunk_index, text, vector) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, file_id, i, text, vector),
                    (table, tenant, vector_store_id),
                )
                for i, (text, vector) in enumerate(zip(chunks, floats, strict=True))
            ]
        await self._load(statements)

    async def delete_chunks(self, tenant: str, vector_store_id: str, file_id: str = "") -> None:
        key = (tenant, vector_store_id, file_id) if file_id else (tenant, vector_store_id)
        where = "tenant=? AND vector_store_id=?" + (" AND file_id=?" if file_id else "")
        statements: list[_W] = []
        async for row in self._scan(f"SELECT file_id, chunk_index, text FROM chunks WHERE {where}", key):
            statements += [
                _W(
                    "DELETE FROM chunk_terms WHERE tenant=? AND vector_store_id=? AND term=? AND file_id=? AND chunk_index=?",
                    (tenant, vector_store_id, term, row.file_id, row.chunk_index),
                    ("chunk_terms", tenant, vector_store_id, term),
                )
                for term in bm25.term_counts(row.text)
            ]
        await self._load(statements)  # the postings first: a search never finds a posting without its chunk
        tables = ["chunks", *(f"chunk_vectors_{d}" for d in sorted(await self._known_vector_tables()))]
        await self._bulk([_W(f"DELETE FROM {table} WHERE {where}", key, (table,)) for table in tables])

    async def search_chunks(
        self, tenant: str, vector_store_ids: Sequence[str], terms: Sequence[str], limit: int
    ) -> list[ChunkHit]:
        """BM25 from the inverted index: one partition read per (store, term), then the texts of the best."""
        hits: list[ChunkHit] = []
        for vs_id in vector_store_ids:
            postings: dict[str, list[tuple[tuple[str, int], int]]] = {}
            for term in {bm25.normal(t) for t in terms}:
                rows = await self._query(
                    "SELECT file_id, chunk_index, tf FROM chunk_terms WHERE tenant=? AND vector_store_id=? AND term=?",
                    (tenant, vs_id, term),
                )
                postings[term] = [((r.file_id, r.chunk_index), r.tf) for r in rows]
            stats = await self._query(
                "SELECT file_id, chunk_index, length FROM chunks WHERE tenant=? AND vector_store_id=?", (tenant, vs_id)
            )
            ranked = await asyncio.to_thread(bm25.rank, postings, {(r.file_id, r.chunk_index): r.length for r in stats})
            for (file_id, chunk_index), score in ranked[:limit]:
                rows = await self._query(
                    "SELECT text FROM chunks WHERE tenant=? AND vector_store_id=? AND file_id=? AND chunk_index=?",
                    (tenant, vs_id, file_id, chunk_index),
                )
                if rows:
                    hits.append(ChunkHit(vs_id, file_id, chunk_index, rows[0].text, score))
        return sorted(hits, key=lambda hit: -hit.rank)[:limit]

    async def search_vectors(
        self, tenant: str, vector_store_ids: Sequence[str], query: bytes, limit: int
    ) -> list[ChunkHit]:
        vector = np.frombuffer(query, dtype=np.float32)
        if len(vector) not in self._vector_tables and len(vector) not in await self._known_vector_tables():
            return []
        table = f"chunk_vectors_{len(vector)}"
        hits = []
        for vs_id in vector_store_ids:
            rows = await self._query(
                f"SELECT file_id, chunk_index, text, similarity_cosine(vector, ?) AS score FROM {table} "
                "WHERE tenant=? AND vector_store_id=? ORDER BY vector ANN OF ? LIMIT ?",
                (vector.tolist(), tenant, vs_id, vector.tolist(), min(limit, 1000)),
            )
            hits += [ChunkHit(vs_id, r.file_id, r.chunk_index, r.text, float(r.score)) for r in rows]
        return sorted(hits, key=lambda hit: -hit.rank)[:limit]


class CassandraBlobs:
    """File bytes in Cassandra, in chunks of at most 1 MiB, one row each (bounded partitions reads)."""

    def __init__(self, store: CassandraStore):
        self._store = store

    async def write(self, tenant: str, blob_id: str, chunks) -> int:
        size = index = 0
        pending = b""
        try:
            async for chunk in chunks:
                pending += chunk
                while len(pending) >= CHUNK_SIZE:
                    await self._put(tenant, blob_id, index, pending[:CHUNK_SIZE])
                    pending, index = pending[CHUNK_SIZE:], index + 1
                size += len(chunk)
            if pending:
                await self._put(tenant, blob_id, index, pending)
        except BaseException:
            await asyncio.shield(self.delete(tenant, blob_id))
            raise
        return size

    async def _put(self, tenant, blob_id, index, data) -> None:
        await self._store._query(
            "INSERT INTO blob_chunks (tenant, blob_id, idx, data) VALUES (?, ?, ?, ?)", (tenant, blob_id, index, data)
        )

    async def read(self, tenant: str, blob_id: str):
        index = 0
        while True:
            rows = await self._store._query(
                "SELECT data FROM blob_chunks WHERE tenant=? AND blob_id=? AND idx=?", (tenant, blob_id, index)
            )
            if not rows:
                if index == 0:
                    raise FileNotFoundError(blob_id)
                return
            yield rows[0].data
            index += 1

    async def delete(self, tenant: str, blob_id: str) -> None:
        await self._store._query("DELETE FROM blob_chunks WHERE tenant=? AND blob_id=?", (tenant, blob_id))
