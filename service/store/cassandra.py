"""The Store on Cassandra 5.0, for several service replicas over one cluster.

Tables are query-first and keyed by tenant: every list is a range read inside one partition
(ids are time-ordered). Side tables answer the other questions (by tag, by id, across tenants)
and are written in the same logged batch as the object. "One active run per thread" is a
lightweight transaction. Keyword search reads an inverted index table (a partition per term) and
ranks by BM25; vectors live in `vector<float, N>` tables with an SAI ANN index, one per dimension.
The driver's futures are bridged to asyncio: nothing here blocks the event loop.
"""

import asyncio
import contextlib
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

from service.store import bm25
from service.store.base import ChunkHit, ListQuery, LogEntry, Page, Record, cursor_window, page_of
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
MIGRATIONS = {
    1: _SCHEMA_V1,
    2: [  # run ownership: who runs a run, and which processes are alive (rows lapse unless renewed)
        "ALTER TABLE active_runs ADD IF NOT EXISTS owner text",
        "CREATE TABLE IF NOT EXISTS owners (owner text PRIMARY KEY)",
    ],
    3: [  # cancels asked of the replica that runs the run: one small partition per replica, rows lapse
        """CREATE TABLE IF NOT EXISTS cancel_requests (
             owner text, tenant text, run_id text, thread_id text, PRIMARY KEY ((owner), tenant, run_id))""",
    ],
}
CANCEL_REQUEST_TTL = 300
SCHEMA_TIMEOUT_SECONDS = 60
BATCH_BYTES = 40 * 1024  # below Cassandra's default batch_size_fail_threshold (50 KiB)


def _size(params: Sequence) -> int:
    return sum(len(p) if isinstance(p, (bytes, str)) else 4 * len(p) if isinstance(p, list) else 8 for p in params)


def _groups(statements: list[tuple[str, tuple]]) -> list[list[tuple[str, tuple]]]:
    """Statements cut into runs of at most BATCH_BYTES of values, in order."""
    groups: list[list[tuple[str, tuple]]] = []
    size = BATCH_BYTES
    for statement in statements:
        weight = _size(statement[1])
        if not groups or size + weight > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(statement)
        size += weight
    return groups


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
# Everything the driver raises of its own (the rest are ours, e.g. a bug binding a parameter).
_DRIVER = (cassandra.DriverException, NoHostAvailable, ConnectionException, ConnectionBusy, ProtocolError, ErrorMessage)


def store_error(exc: BaseException) -> StoreError:
    """The typed store error for a cassandra-driver exception."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, _TRANSIENT):
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
        profile = ExecutionProfile(consistency_level=ConsistencyLevel.name_to_value[config["consistency"]])
        self._cluster = Cluster(
            config["hosts"],
            port=config["port"],
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            protocol_version=5,
        )
        with _translated():  # a one-off blocking handshake, off the loop
            self._session = await asyncio.to_thread(self._cluster.connect)
        self._session.default_fetch_size = None  # our reads are bounded by LIMIT; take them whole
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
        for version, statements in sorted(MIGRATIONS.items()):
            if version in done:
                continue
            for statement in statements:
                await self._run(statement)
            await self._run(
                f"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, toTimestamp(now()))"
            )

    async def close(self) -> None:
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)
            self._cluster = self._session = None

    async def _execute(self, statement, params: Sequence | None = None, request_seconds: float | None = None) -> list:
        """THE place every statement runs: driver errors, raised at once or later, come out typed."""
        with _translated():
            if request_seconds is None:  # the session's default request timeout
                future = self._session.execute_async(statement, params)
            else:
                future = self._session.execute_async(statement, params, timeout=request_seconds)
        return list(await _wait(future))

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

    async def _batch(self, statements: list[tuple[str, tuple]]) -> None:
        """Statements in logged batches of at most BATCH_BYTES (Cassandra refuses batches over 50 KiB
        by default); a statement bigger than that goes alone. Each batch is all or nothing."""
        for group in _groups(statements):
            if len(group) == 1:
                await self._query(*group[0])
                continue
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            for cql, params in group:
                batch.add(await self._statement(cql), params)
            await self._execute(batch)

    # ---- objects --------------------------------------------------------------------------

    async def get(self, tenant: str, kind: str, parent: str, object_id: str) -> bytes | None:
        rows = await self._query(
            "SELECT data FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
            (tenant, kind, parent, object_id),
        )
        return rows[0].data if rows else None

    async def _old_tag(self, tenant: str, record: Record) -> str | None:
        rows = await self._query(
            "SELECT tag FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?",
            (tenant, record.kind, record.parent, record.id),
        )
        return (rows[0].tag or "") if rows else None

    def _upsert(self, tenant: str, r: Record, old_tag: str | None) -> list[tuple[str, tuple]]:
        statements = [
            (
                "INSERT INTO objects (tenant, kind, parent, id, tag, data) VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, r.kind, r.parent, r.id, r.tag, r.data),
            ),
            (
                "INSERT INTO objects_by_id (tenant, kind, id, parent) VALUES (?, ?, ?, ?)",
                (tenant, r.kind, r.id, r.parent),
            ),
        ]
        if old_tag and old_tag != r.tag:
            statements += self._untag(tenant, r.kind, r.parent, r.id, old_tag)
        if r.tag:
            statements += [
                (
                    "INSERT INTO objects_by_tag (tenant, kind, parent, tag, id, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, r.kind, r.parent, r.tag, r.id, r.data),
                ),
                (
                    "INSERT INTO tagged_everywhere (kind, tag, tenant, parent, id) VALUES (?, ?, ?, ?, ?)",
                    (r.kind, r.tag, tenant, r.parent, r.id),
                ),
            ]
        return statements

    @staticmethod
    def _untag(tenant, kind, parent, object_id, tag) -> list[tuple[str, tuple]]:
        return [
            (
                "DELETE FROM objects_by_tag WHERE tenant=? AND kind=? AND parent=? AND tag=? AND id=?",
                (tenant, kind, parent, tag, object_id),
            ),
            (
                "DELETE FROM tagged_everywhere WHERE kind=? AND tag=? AND tenant=? AND parent=? AND id=?",
                (kind, tag, tenant, parent, object_id),
            ),
        ]

    def _remove(self, tenant, kind, parent, object_id, tag) -> list[tuple[str, tuple]]:
        statements = [
            ("DELETE FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?", (tenant, kind, parent, object_id)),
            (
                "DELETE FROM objects_by_id WHERE tenant=? AND kind=? AND id=? AND parent=?",
                (tenant, kind, object_id, parent),
            ),
        ]
        return statements + (self._untag(tenant, kind, parent, object_id, tag) if tag else [])

    async def put(self, tenant: str, records: Sequence[Record]) -> None:
        latest = {(r.kind, r.parent, r.id): r for r in records}  # one write per object (see commit)
        statements = []
        for record in latest.values():
            statements += self._upsert(tenant, record, await self._old_tag(tenant, record))
        await self._batch(statements)

    async def delete(self, tenant: str, kind: str, parent: str, object_id: str) -> bool:
        rows = await self._query(
            "SELECT tag FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?", (tenant, kind, parent, object_id)
        )
        if not rows:
            return False
        await self._batch(self._remove(tenant, kind, parent, object_id, rows[0].tag))
        return True

    async def _children(self, tenant: str, kind: str, parent: str) -> list:
        return await self._query(
            "SELECT id, tag FROM objects WHERE tenant=? AND kind=? AND parent=?", (tenant, kind, parent)
        )

    async def delete_thread(self, tenant: str, thread_id: str) -> bool:
        if await self.get(tenant, "thread", "", thread_id) is None:
            return False
        statements = []
        for run in await self._children(tenant, "run", thread_id):
            for step in await self._children(tenant, "step", run.id):
                statements += self._remove(tenant, "step", run.id, step.id, step.tag)
            statements.append(("DELETE FROM run_events WHERE tenant=? AND run_id=?", (tenant, run.id)))
            statements += self._remove(tenant, "run", thread_id, run.id, run.tag)
        for message in await self._children(tenant, "message", thread_id):
            statements += self._remove(tenant, "message", thread_id, message.id, message.tag)
        statements.append(("DELETE FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)))
        statements += self._remove(tenant, "thread", "", thread_id, "")
        await self._batch(statements)
        return True

    async def list_page(self, tenant: str, kind: str, parent: str, query: ListQuery, tag: str = "") -> Page:
        table, where, params = "objects", ["tenant=?", "kind=?", "parent=?"], [tenant, kind, parent]
        if tag:
            table = "objects_by_tag"
            where.append("tag=?")
            params.append(tag)
        conditions, values, scan_ascending, backwards = cursor_window(query)
        rows = await self._query(
            f"SELECT data FROM {table} WHERE {' AND '.join(where + conditions)} "
            f"ORDER BY id {'ASC' if scan_ascending else 'DESC'} LIMIT ?",
            (*params, *values, query.limit + 1),
        )
        return page_of([row.data for row in rows], query, backwards)

    async def parents_of(self, tenant: str, kind: str, object_id: str) -> list[str]:
        rows = await self._query(
            "SELECT parent FROM objects_by_id WHERE tenant=? AND kind=? AND id=?", (tenant, kind, object_id)
        )
        return [row.parent for row in rows]

    async def objects_with_tag(self, kind: str, tag: str) -> list[tuple[str, bytes]]:
        found = []
        for row in await self._query(
            "SELECT tenant, parent, id FROM tagged_everywhere WHERE kind=? AND tag=?", (kind, tag)
        ):
            data = await self.get(row.tenant, kind, row.parent, row.id)
            if data is not None:
                found.append((row.tenant, data))
        return found

    # ---- runs -----------------------------------------------------------------------------

    async def claim_thread(self, tenant: str, thread_id: str, run_id: str, owner: str = "") -> str | None:
        rows = await self._query(
            "INSERT INTO active_runs (tenant, thread_id, run_id, owner) VALUES (?, ?, ?, ?) IF NOT EXISTS",
            (tenant, thread_id, run_id, owner),
        )
        row = rows[0]
        return None if row.applied else row.run_id

    async def take_over(
        self, tenant: str, thread_id: str, run_id: str, new_owner: str, old_owner: str | None = None
    ) -> bool:
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
        return bool(rows[0].applied)

    async def run_owner(self, tenant: str, thread_id: str) -> tuple[str, str] | None:
        rows = await self._query(
            "SELECT run_id, owner FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)
        )
        return (rows[0].run_id, rows[0].owner or "") if rows else None

    async def request_cancel(self, owner: str, tenant: str, thread_id: str, run_id: str) -> None:
        await self._query(
            f"INSERT INTO cancel_requests (owner, tenant, run_id, thread_id) VALUES (?, ?, ?, ?) USING TTL {CANCEL_REQUEST_TTL}",
            (owner, tenant, run_id, thread_id),
        )

    async def cancel_requests(self, owner: str) -> list[tuple[str, str, str]]:
        rows = await self._query("SELECT tenant, thread_id, run_id FROM cancel_requests WHERE owner=?", (owner,))
        return [(r.tenant, r.thread_id, r.run_id) for r in rows]

    async def clear_cancel_request(self, owner: str, tenant: str, run_id: str) -> None:
        await self._query(
            "DELETE FROM cancel_requests WHERE owner=? AND tenant=? AND run_id=?", (owner, tenant, run_id)
        )

    async def heartbeat(self, owner: str, lease_seconds: int) -> None:
        await self._query(f"INSERT INTO owners (owner) VALUES (?) USING TTL {int(lease_seconds)}", (owner,))

    async def live_owners(self) -> set[str]:
        return {row.owner for row in await self._query("SELECT owner FROM owners")}

    async def active_run(self, tenant: str, thread_id: str) -> str | None:
        rows = await self._query("SELECT run_id FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id))
        return rows[0].run_id if rows else None

    async def release_thread(self, tenant: str, thread_id: str, run_id: str) -> None:
        await self._query(
            "DELETE FROM active_runs WHERE tenant=? AND thread_id=? IF run_id=?", (tenant, thread_id, run_id)
        )

    async def active_runs(self) -> list[tuple[str, str, str, str]]:
        rows = await self._query("SELECT tenant, thread_id, run_id, owner FROM active_runs")
        return [(r.tenant, r.thread_id, r.run_id, r.owner or "") for r in rows]

    async def commit(self, entries: Sequence[LogEntry]) -> None:
        statements, releases = [], []
        latest: dict[tuple, tuple[str, Record]] = {}
        for entry in entries:
            if entry.sequence:
                statements.append(
                    (
                        "INSERT INTO run_events (tenant, run_id, seq, data) VALUES (?, ?, ?, ?)",
                        (entry.tenant, entry.run_id, entry.sequence, entry.data),
                    )
                )
            for record in entry.records:
                # Writes in one batch share a timestamp, and then the larger value wins, not the
                # later one: write each object once, as its last snapshot in this commit.
                latest[(entry.tenant, record.kind, record.parent, record.id)] = (entry.tenant, record)
            if entry.release_thread:
                releases.append((entry.tenant, entry.release_thread, entry.run_id))
        for tenant, record in latest.values():  # runs, steps, messages, threads: their tags never change
            statements += self._upsert(tenant, record, record.tag)
        await self._batch(statements)
        for tenant, thread_id, run_id in releases:  # a conditional write cannot join a multi-partition batch
            await self.release_thread(tenant, thread_id, run_id)

    async def last_sequence(self, tenant: str, run_id: str) -> int:
        rows = await self._query(
            "SELECT seq FROM run_events WHERE tenant=? AND run_id=? ORDER BY seq DESC LIMIT 1", (tenant, run_id)
        )
        return rows[0].seq if rows else 0

    async def read_events(self, tenant: str, run_id: str, after_sequence: int) -> list[tuple[int, bytes]]:
        rows = await self._query(
            "SELECT seq, data FROM run_events WHERE tenant=? AND run_id=? AND seq > ?", (tenant, run_id, after_sequence)
        )
        return [(row.seq, row.data) for row in rows]

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
        statements: list[tuple[str, tuple]] = []
        for i, text in enumerate(chunks):
            counts = bm25.term_counts(text)
            statements.append(
                (
                    "INSERT INTO chunks (tenant, vector_store_id, file_id, chunk_index, text, length) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, file_id, i, text, sum(counts.values())),
                )
            )
            statements += [
                (
                    "INSERT INTO chunk_terms (tenant, vector_store_id, term, file_id, chunk_index, tf) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, term, file_id, i, tf),
                )
                for term, tf in counts.items()
            ]
        if vectors:
            floats = [np.frombuffer(v, dtype=np.float32).tolist() for v in vectors]
            table = await self._vector_table(len(floats[0]))
            statements += [
                (
                    f"INSERT INTO {table} (tenant, vector_store_id, file_id, chunk_index, text, vector) VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, vector_store_id, file_id, i, text, vector),
                )
                for i, (text, vector) in enumerate(zip(chunks, floats, strict=True))
            ]
        await self._batch(statements)

    async def delete_chunks(self, tenant: str, vector_store_id: str, file_id: str = "") -> None:
        key = (tenant, vector_store_id, file_id) if file_id else (tenant, vector_store_id)
        where = "tenant=? AND vector_store_id=?" + (" AND file_id=?" if file_id else "")
        statements: list[tuple[str, tuple]] = []
        for row in await self._query(f"SELECT file_id, chunk_index, text FROM chunks WHERE {where}", key):
            statements += [
                (
                    "DELETE FROM chunk_terms WHERE tenant=? AND vector_store_id=? AND term=? AND file_id=? AND chunk_index=?",
                    (tenant, vector_store_id, term, row.file_id, row.chunk_index),
                )
                for term in bm25.term_counts(row.text)
            ]
        tables = ["chunks", *(f"chunk_vectors_{d}" for d in sorted(await self._known_vector_tables()))]
        statements += [(f"DELETE FROM {table} WHERE {where}", key) for table in tables]
        await self._batch(statements)

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
