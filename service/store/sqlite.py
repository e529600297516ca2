"""The embedded default: one SQLite file, its connections on threads of their own (never the loop).

Two connections: one writer, whose transactions run one at a time on its own thread (a whole
transaction is one trip there), and one reader on another thread.
In WAL mode the reader sees only committed data, so no API call can observe (and no crash
can take back) half of a transaction. A run's claim and its first commit are one transaction
(claim_and_commit); read_many's reads are one read transaction, one snapshot of the file.
"""

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from service.errors import ThreadBusy
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
    page_of,
)
from service.store.errors import StoreError, StoreUnavailable

T = TypeVar("T")
# The active_runs marker of a deleted thread: a run claimed on it after the delete is refused. (One
# small row per deleted thread is kept: a SQLite store serves one process.)
DELETED = DELETED_THREAD

_SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS objects (
  tenant TEXT NOT NULL, kind TEXT NOT NULL, parent TEXT NOT NULL, id TEXT NOT NULL,
  tag TEXT NOT NULL DEFAULT '', data BLOB NOT NULL,
  PRIMARY KEY (tenant, kind, parent, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_tag ON objects (tenant, kind, parent, tag, id) WHERE tag != '';
CREATE TABLE IF NOT EXISTS active_runs (
  tenant TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant, thread_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, alive_until REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cancel_requests (
  owner TEXT NOT NULL, tenant TEXT NOT NULL, run_id TEXT NOT NULL, thread_id TEXT NOT NULL,
  PRIMARY KEY (owner, tenant, run_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
  text, tenant UNINDEXED, vector_store_id UNINDEXED, file_id UNINDEXED, chunk_index UNINDEXED,
  tokenize = 'porter unicode61'
);
CREATE TABLE IF NOT EXISTS chunk_vectors (
  tenant TEXT NOT NULL, vector_store_id TEXT NOT NULL, file_id TEXT NOT NULL, chunk_index INTEGER NOT NULL,
  text TEXT NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (tenant, vector_store_id, file_id, chunk_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_events (
  tenant TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (tenant, run_id, seq)
) WITHOUT ROWID;
"""


def _cosine_top(query: bytes, candidates: list[bytes], limit: int) -> list[tuple[int, float]]:
    """(candidate index, cosine similarity) of the best unit vectors. CPU work: run it in a thread."""
    if not candidates:
        return []
    matrix = np.frombuffer(b"".join(candidates), dtype=np.float32).reshape(len(candidates), -1)
    scores = matrix @ np.frombuffer(query, dtype=np.float32)
    best = np.argsort(-scores)[:limit]
    return [(int(i), float(scores[i])) for i in best]


def _delete_chunk_statements(key: tuple[str, str, str]) -> list[tuple[str, tuple]]:
    """Statements removing a file's chunks from a vector store (all of the store's when file_id is "")."""
    tenant, vector_store_id, file_id = key
    where = "tenant=? AND vector_store_id=?" + (" AND file_id=?" if file_id else "")
    params = (tenant, vector_store_id, file_id) if file_id else (tenant, vector_store_id)
    return [(f"DELETE FROM chunks WHERE {where}", params), (f"DELETE FROM chunk_vectors WHERE {where}", params)]


# Primary result codes that say "not now" rather than "never": a lock held too long, a full or
# failing disk, a file that cannot be opened at the moment.
_TRANSIENT = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
}


def store_error(exc: sqlite3.Error) -> StoreError:
    """The typed store error for an sqlite3 error (extended result codes carry the primary one in
    their low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _TRANSIENT:
        return StoreUnavailable(f"SQLite is unavailable: {exc}")
    return StoreError(f"SQLite failed: {exc}")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Raises sqlite3 errors as StoreError/StoreUnavailable. Used at every place a statement runs."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(exc) from exc


def _transaction(connection: sqlite3.Connection, statements: Sequence[tuple[str, tuple]]) -> None:
    try:
        connection.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            connection.execute(sql, params)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _unless_active(
    connection: sqlite3.Connection,
    tenant: str,
    thread_id: str,
    statements: Sequence[tuple[str, tuple]],
    deleted_is_free: bool,
) -> str | None:
    """Runs statements in one transaction, unless the thread has an active run (its id is returned;
    the deleted-thread marker counts as one unless deleted_is_free)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        row = connection.execute(
            "SELECT run_id FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)
        ).fetchone()
        if row is not None and not (deleted_is_free and row[0] == DELETED):
            connection.execute("ROLLBACK")
            return row[0]
        for sql, params in statements:
            connection.execute(sql, params)
        connection.execute("COMMIT")
        return None
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _read_together(connection: sqlite3.Connection, queries: Sequence[tuple[str, tuple]]) -> list[list]:
    """Every query's rows, all read in one transaction: from one snapshot of the file."""
    try:
        connection.execute("BEGIN")
        rows = [connection.execute(sql, params).fetchall() for sql, params in queries]
        connection.execute("COMMIT")
        return rows
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _rowcount(connection: sqlite3.Connection, sql: str, params: tuple) -> int:
    return connection.execute(sql, params).rowcount


def _fetchall(connection: sqlite3.Connection, sql: str, params: tuple) -> list:
    return connection.execute(sql, params).fetchall()


_UPSERT = "INSERT OR REPLACE INTO objects (tenant, kind, parent, id, tag, data) VALUES (?, ?, ?, ?, ?, ?)"
_GET = "SELECT data FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?"
_CLAIM = "INSERT INTO active_runs (tenant, thread_id, run_id, owner) VALUES (?, ?, ?, ?)"


def _list_query(tenant: str, listing: Listing) -> tuple[str, tuple, bool]:
    """The SELECT of one page of a list (limit + 1 rows), its parameters, and whether its rows
    come backwards (see cursor_window)."""
    where, params = ["tenant=?", "kind=?", "parent=?"], [tenant, listing.kind, listing.parent]
    if listing.tag:
        where.append("tag=?")
        params.append(listing.tag)
    conditions, values, scan_ascending, backwards = cursor_window(listing.query)
    sql = (
        f"SELECT data FROM objects WHERE {' AND '.join(where + conditions)} "
        f"ORDER BY id {'ASC' if scan_ascending else 'DESC'} LIMIT ?"
    )
    return sql, (*params, *values, listing.query.limit + 1), backwards


def _commit_statements(entries: Sequence[LogEntry]) -> list[tuple[str, tuple]]:
    """The statements of a commit: each entry's event, its snapshots, its thread's release."""
    statements: list[tuple[str, tuple]] = []
    for entry in entries:
        if entry.sequence:
            statements.append(
                (
                    "INSERT INTO run_events (tenant, run_id, seq, data) VALUES (?, ?, ?, ?)",
                    (entry.tenant, entry.run_id, entry.sequence, entry.data),
                )
            )
        statements.extend((_UPSERT, (entry.tenant, r.kind, r.parent, r.id, r.tag, r.data)) for r in entry.records)
        if entry.release_thread:
            statements.append(
                (
                    "DELETE FROM active_runs WHERE tenant=? AND thread_id=? AND run_id=?",
                    (entry.tenant, entry.release_thread, entry.run_id),
                )
            )
    return statements


class SqliteStore:
    shared = False  # one process owns the file: another owner's runs are orphans at once

    def __init__(self, path: str):
        self._path = path
        # Each connection lives on its own thread; a transaction or a query is one trip there.
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")

    async def open(self) -> None:
        directory = os.path.dirname(self._path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._writer = await self._on(self._write_thread, self._connect, _SCHEMA)
        self._reader = await self._on(self._read_thread, self._connect, "")

    def _connect(self, script: str) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        if script:
            connection.executescript(script)
        return connection

    async def close(self) -> None:
        for connection, thread in ((self._reader, self._read_thread), (self._writer, self._write_thread)):
            if connection is not None:
                await self._on(thread, connection.close)
        self._reader = self._writer = None

    @staticmethod
    async def _on(thread: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
        """work(*args) on a connection's thread; sqlite3 errors come out typed. The call runs to its
        end even if the caller is cancelled meanwhile, so no transaction is ever left open."""
        future = asyncio.get_running_loop().run_in_executor(thread, work, *args)
        with _translated():
            return await asyncio.shield(future)

    @property
    def writer(self) -> sqlite3.Connection:
        assert self._writer is not None, "store is not open"
        return self._writer

    @property
    def reader(self) -> sqlite3.Connection:
        assert self._reader is not None, "store is not open"
        return self._reader

    async def _write(self, statements: Sequence[tuple[str, tuple]]) -> None:
        """Runs statements in one transaction, in one trip to the writer's thread."""
        await self._on(self._write_thread, _transaction, self.writer, statements)

    async def _write_one(self, sql: str, params: tuple) -> int:
        """One statement in its own transaction; returns the number of rows it changed."""
        return await self._on(self._write_thread, _rowcount, self.writer, sql, params)

    async def _read(self, sql: str, params: tuple = ()) -> list:
        """Executes and fetches in one trip to the reader's thread. In WAL mode the reader sees
        only committed data."""
        return await self._on(self._read_thread, _fetchall, self.reader, sql, params)

    async def get(self, tenant: str, kind: str, parent: str, object_id: str) -> bytes | None:
        rows = await self._read(_GET, (tenant, kind, parent, object_id))
        return rows[0][0] if rows else None

    async def put(self, tenant: str, records: Sequence[Record]) -> None:
        await self._write([(_UPSERT, (tenant, r.kind, r.parent, r.id, r.tag, r.data)) for r in records])

    async def delete(self, tenant: str, kind: str, parent: str, object_id: str) -> bool:
        changed = await self._write_one(
            "DELETE FROM objects WHERE tenant=? AND kind=? AND parent=? AND id=?", (tenant, kind, parent, object_id)
        )
        return changed > 0

    async def delete_thread(self, tenant: str, thread_id: str) -> bool:
        if await self.get(tenant, "thread", "", thread_id) is None:
            return False
        runs = "SELECT id FROM objects WHERE tenant=? AND kind='run' AND parent=?"
        active = await self._on(
            self._write_thread,
            _unless_active,
            self.writer,
            tenant,
            thread_id,
            [
                (f"DELETE FROM run_events WHERE tenant=? AND run_id IN ({runs})", (tenant, tenant, thread_id)),
                (
                    f"DELETE FROM objects WHERE tenant=? AND kind='step' AND parent IN ({runs})",
                    (tenant, tenant, thread_id),
                ),
                (
                    "DELETE FROM objects WHERE tenant=? AND kind IN ('message','run') AND parent=?",
                    (tenant, thread_id),
                ),
                (
                    "DELETE FROM objects WHERE tenant=? AND kind='thread' AND parent='' AND id=?",
                    (tenant, thread_id),
                ),
                # the marker: a claim that checked the thread before this delete finds it gone
                (
                    "INSERT OR REPLACE INTO active_runs (tenant, thread_id, run_id, owner) VALUES (?, ?, ?, '')",
                    (tenant, thread_id, DELETED),
                ),
            ],
            True,  # a thread deleted part-way is deleted again
        )
        if active is not None:
            raise ThreadBusy(f"Cannot delete thread {thread_id} while run {active} is active.")
        return True

    async def list_page(self, tenant: str, kind: str, parent: str, query: ListQuery, tag: str = "") -> Page:
        sql, params, backwards = _list_query(tenant, Listing(kind, parent, query, tag))
        return page_of([row[0] for row in await self._read(sql, params)], query, backwards)

    async def read_many(
        self, tenant: str, keys: Sequence[Key], listings: Sequence[Listing] = ()
    ) -> tuple[list[bytes | None], list[Page]]:
        lists = [_list_query(tenant, listing) for listing in listings]
        queries = [(_GET, (tenant, key.kind, key.parent, key.id)) for key in keys] + [(sql, p) for sql, p, _ in lists]
        rows = await self._on(self._read_thread, _read_together, self.reader, queries)
        found = [found[0][0] if found else None for found in rows[: len(keys)]]
        pages = [
            page_of([row[0] for row in listed], listing.query, backwards)
            for listed, listing, (_, _, backwards) in zip(rows[len(keys) :], listings, lists, strict=True)
        ]
        return found, pages

    async def claim_thread(self, tenant: str, thread_id: str, run_id: str, owner: str = "") -> str | None:
        claimed = await self._write_one(
            _CLAIM + " ON CONFLICT (tenant, thread_id) DO NOTHING", (tenant, thread_id, run_id, owner)
        )
        if claimed == 1:
            return None
        rows = await self._read("SELECT run_id FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id))
        return rows[0][0] if rows else await self.claim_thread(tenant, thread_id, run_id, owner)

    async def claim_and_commit(
        self, tenant: str, thread_id: str, run_id: str, owner: str, entries: Sequence[LogEntry]
    ) -> str | None:
        # one transaction: refused, or failed, it leaves no trace
        statements = [(_CLAIM, (tenant, thread_id, run_id, owner)), *_commit_statements(entries)]
        return await self._on(self._write_thread, _unless_active, self.writer, tenant, thread_id, statements, False)

    async def take_over(
        self, tenant: str, thread_id: str, run_id: str, new_owner: str, old_owner: str | None = None
    ) -> bool:
        sql = "UPDATE active_runs SET owner=? WHERE tenant=? AND thread_id=? AND run_id=?"
        params: tuple = (new_owner, tenant, thread_id, run_id)
        if old_owner is not None:
            sql, params = sql + " AND owner=?", (*params, old_owner)
        return await self._write_one(sql, params) == 1

    async def run_owner(self, tenant: str, thread_id: str) -> tuple[str, str] | None:
        rows = await self._read(
            "SELECT run_id, owner FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id)
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] != DELETED else None

    async def request_cancel(self, owner: str, tenant: str, thread_id: str, run_id: str) -> None:
        await self._write_one(
            "INSERT OR REPLACE INTO cancel_requests (owner, tenant, run_id, thread_id) VALUES (?, ?, ?, ?)",
            (owner, tenant, run_id, thread_id),
        )

    async def cancel_requests(self, owner: str) -> list[tuple[str, str, str]]:
        rows = await self._read("SELECT tenant, thread_id, run_id FROM cancel_requests WHERE owner=?", (owner,))
        return [tuple(row) for row in rows]

    async def clear_cancel_request(self, owner: str, tenant: str, run_id: str) -> None:
        await self._write_one(
            "DELETE FROM cancel_requests WHERE owner=? AND tenant=? AND run_id=?", (owner, tenant, run_id)
        )

    async def heartbeat(self, owner: str, lease_seconds: int) -> None:
        await self._write_one(
            "INSERT OR REPLACE INTO owners (owner, alive_until) VALUES (?, ?)", (owner, time.time() + lease_seconds)
        )

    async def live_owners(self) -> set[str]:
        return {row[0] for row in await self._read("SELECT owner FROM owners WHERE alive_until > ?", (time.time(),))}

    async def active_run(self, tenant: str, thread_id: str) -> str | None:
        rows = await self._read("SELECT run_id FROM active_runs WHERE tenant=? AND thread_id=?", (tenant, thread_id))
        return rows[0][0] if rows and rows[0][0] != DELETED else None

    async def release_thread(self, tenant: str, thread_id: str, run_id: str) -> None:
        await self._write_one(
            "DELETE FROM active_runs WHERE tenant=? AND thread_id=? AND run_id=?", (tenant, thread_id, run_id)
        )

    async def active_runs(self) -> list[tuple[str, str, str, str]]:
        rows = await self._read(
            "SELECT tenant, thread_id, run_id, owner FROM active_runs WHERE run_id != ?", (DELETED,)
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def runs_to_check(self, alive: set[str], mine: str) -> list[tuple[str, str, str, str]]:
        return await self.active_runs()  # one file, one process's runs: all of them

    async def commit(self, entries: Sequence[LogEntry]) -> None:
        await self._write(_commit_statements(entries))

    async def last_sequence(self, tenant: str, run_id: str) -> int:
        rows = await self._read("SELECT MAX(seq) FROM run_events WHERE tenant=? AND run_id=?", (tenant, run_id))
        return rows[0][0] or 0

    async def read_events(
        self, tenant: str, run_id: str, after_sequence: int, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        rows = await self._read(
            "SELECT seq, data FROM run_events WHERE tenant=? AND run_id=? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, run_id, after_sequence, limit),
        )
        return [(row[0], row[1]) for row in rows]

    async def parents_of(self, tenant: str, kind: str, object_id: str) -> list[str]:
        rows = await self._read(
            "SELECT parent FROM objects WHERE tenant=? AND kind=? AND id=?", (tenant, kind, object_id)
        )
        return [row[0] for row in rows]

    async def objects_with_tag(self, kind: str, tag: str) -> list[tuple[str, bytes]]:
        rows = await self._read("SELECT tenant, data FROM objects WHERE kind=? AND tag=?", (kind, tag))
        return [(row[0], row[1]) for row in rows]

    async def index_chunks(
        self, tenant: str, vector_store_id: str, file_id: str, chunks: Sequence[str], vectors: Sequence[bytes] = ()
    ) -> None:
        key = (tenant, vector_store_id, file_id)
        insert = "INSERT INTO chunks (text, tenant, vector_store_id, file_id, chunk_index) VALUES (?, ?, ?, ?, ?)"
        insert_vector = "INSERT INTO chunk_vectors (tenant, vector_store_id, file_id, chunk_index, text, vector) VALUES (?, ?, ?, ?, ?, ?)"
        await self._write(
            _delete_chunk_statements(key)
            + [(insert, (text, *key, i)) for i, text in enumerate(chunks)]
            + [
                (insert_vector, (*key, i, text, vector))
                for i, (text, vector) in enumerate(zip(chunks, vectors, strict=False))
            ]  # no vectors: no rows
        )

    async def delete_chunks(self, tenant: str, vector_store_id: str, file_id: str = "") -> None:
        await self._write(_delete_chunk_statements((tenant, vector_store_id, file_id)))

    async def search_vectors(
        self, tenant: str, vector_store_ids: Sequence[str], query: bytes, limit: int
    ) -> list[ChunkHit]:
        if not vector_store_ids:
            return []
        stores = ",".join("?" * len(vector_store_ids))
        rows = await self._read(
            f"SELECT vector_store_id, file_id, chunk_index, text, vector FROM chunk_vectors "
            f"WHERE tenant=? AND vector_store_id IN ({stores})",
            (tenant, *vector_store_ids),
        )
        best = await asyncio.to_thread(_cosine_top, query, [row[4] for row in rows], limit)
        return [ChunkHit(rows[i][0], rows[i][1], int(rows[i][2]), rows[i][3], score) for i, score in best]

    async def search_chunks(
        self, tenant: str, vector_store_ids: Sequence[str], terms: Sequence[str], limit: int
    ) -> list[ChunkHit]:
        if not terms or not vector_store_ids:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        stores = ",".join("?" * len(vector_store_ids))
        rows = await self._read(
            "SELECT vector_store_id, file_id, chunk_index, text, -bm25(chunks) AS rank FROM chunks "
            f"WHERE chunks MATCH ? AND tenant=? AND vector_store_id IN ({stores}) ORDER BY rank DESC LIMIT ?",
            (match, tenant, *vector_store_ids, limit),
        )
        return [ChunkHit(row[0], row[1], int(row[2]), row[3], float(row[4])) for row in rows]
