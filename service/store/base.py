"""The storage contract every backend implements.

Objects are opaque serialized protobufs keyed by (tenant, kind, parent, id); ids are
time-ordered, so a list is a range scan on id. Run events live in a per-run log keyed by
sequence number, written together with the object snapshots they carry.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# What claim_thread answers for a thread that is being (or was just) deleted: no run may start on it.
DELETED_THREAD = "(deleted)"


def owner_process(owner: str) -> str:
    """The process named by a run's owner text: the part before the first "/" (the rest of an
    ownership token is a nonce and flags), as heartbeat and live_owners name processes."""
    return owner.partition("/")[0]


@dataclass(frozen=True)
class Record:
    kind: str
    parent: str  # "" for top-level objects
    id: str
    data: bytes
    # A secondary key lists can filter on (a message's run_id); "" for none.
    tag: str = ""


@dataclass(frozen=True)
class ChunkHit:
    vector_store_id: str
    file_id: str
    chunk_index: int
    text: str
    rank: float  # higher is better; comparable within one search only


@dataclass(frozen=True)
class ListQuery:
    limit: int = 20
    order: str = "desc"  # "asc" | "desc"
    after: str = ""
    before: str = ""


@dataclass(frozen=True)
class Page:
    items: list[bytes]
    has_more: bool


@dataclass(frozen=True)
class Key:
    """One object, as get() names it."""

    kind: str
    parent: str
    id: str


@dataclass(frozen=True)
class Listing:
    """One page of a list, as list_page() names it."""

    kind: str
    parent: str
    query: ListQuery
    tag: str = ""


def cursor_window(query: ListQuery) -> tuple[list[str], list[str], bool, bool]:
    """How any store reads one page of a time-ordered id range: (id conditions, their values,
    scan ascending?, flip the rows afterwards?). With only `before`, the page is the one just
    before it, so the scan runs backwards and the rows are flipped."""
    ascending = query.order == "asc"
    conditions, values = [], []
    if query.after:
        conditions.append("id > ?" if ascending else "id < ?")
        values.append(query.after)
    if query.before:
        conditions.append("id < ?" if ascending else "id > ?")
        values.append(query.before)
    backwards = bool(query.before) and not query.after
    return conditions, values, ascending != backwards, backwards


def page_of(rows: list[bytes], query: ListQuery, backwards: bool) -> Page:
    """A page from up to limit + 1 rows read in scan order."""
    items = rows[: query.limit]
    if backwards:
        items.reverse()
    return Page(items=items, has_more=len(rows) > query.limit)


@dataclass
class LogEntry:
    """One run event and the object snapshots it carries, committed atomically.
    An entry with sequence 0 carries snapshots only. `release_thread` frees that thread's
    active-run claim in the same transaction (the run has ended)."""

    tenant: str
    run_id: str
    sequence: int
    data: bytes
    records: list[Record] = field(default_factory=list)
    release_thread: str = ""


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, tenant: str, kind: str, parent: str, object_id: str) -> bytes | None: ...

    async def put(self, tenant: str, records: Sequence[Record]) -> None:
        """Inserts or replaces all records, all or nothing."""

    async def delete(self, tenant: str, kind: str, parent: str, object_id: str) -> bool:
        """Deletes one object; False when it did not exist."""

    async def delete_thread(self, tenant: str, thread_id: str) -> bool:
        """Deletes a thread with its messages, runs, run steps and run events; False when it did not
        exist. Raises ThreadBusy while the thread has an active run; once it has begun, no run can
        be claimed on the thread (claim_thread returns a marker instead of an active run id). A
        delete that fails part-way leaves the thread, and deleting it again finishes the job."""

    async def list_page(self, tenant: str, kind: str, parent: str, query: ListQuery, tag: str = "") -> Page: ...

    async def read_many(
        self, tenant: str, keys: Sequence[Key], listings: Sequence[Listing] = ()
    ) -> tuple[list[bytes | None], list[Page]]:
        """get() of every key and list_page() of every listing, in one round trip (what a request
        needs at once, read together rather than one after the other)."""

    # True when several service processes may share the store (their runs then have owners that
    # must keep a heartbeat); False for a single-process store.
    shared: bool

    async def claim_thread(self, tenant: str, thread_id: str, run_id: str, owner: str = "") -> str | None:
        """Marks run_id the thread's one active run, owned by `owner`. Returns None on success,
        else the active run's id."""

    async def claim_and_commit(
        self, tenant: str, thread_id: str, run_id: str, owner: str, entries: Sequence[LogEntry]
    ) -> str | None:
        """claim_thread, and once the claim holds, commit(entries): a run's first write (the run,
        its first events, the thread and messages it brings) with its claim, in one round trip.
        Refused, it writes nothing and returns the active run's id (DELETED_THREAD for a deleted
        thread), as claim_thread does. On an error the claim may stand, with none, some or all of
        the entries (where the store has no transaction across both): the caller must not release
        it but leave it to the sweep, which frees the thread of a run that is not there and ends
        one that is (runs_to_check and active_runs list it, owned by `owner`)."""

    async def active_run(self, tenant: str, thread_id: str) -> str | None:
        """The id of the thread's active run, if any."""

    async def release_thread(self, tenant: str, thread_id: str, run_id: str) -> None:
        """Clears the thread's active run if it is still run_id."""

    async def active_runs(self) -> list[tuple[str, str, str, str]]:
        """(tenant, thread_id, run_id, owner) of every claimed thread (recovery and lease checks)."""

    async def runs_to_check(self, alive: set[str], mine: str) -> list[tuple[str, str, str, str]]:
        """(tenant, thread_id, run_id, owner) of every active run whose owner's process (owner_process)
        is not in `alive`, and of every active run of process `mine`: what a sweep must look at. It
        may answer more (the caller checks each); it need not read the runs of live processes."""

    async def take_over(
        self, tenant: str, thread_id: str, run_id: str, new_owner: str, old_owner: str | None = None
    ) -> bool:
        """Makes new_owner the owner of the thread's active run if it is still run_id (and, when
        given, still owned by old_owner). Only one of several concurrent takers succeeds."""

    async def run_owner(self, tenant: str, thread_id: str) -> tuple[str, str] | None:
        """(run_id, owner) of the thread's active run, if any."""

    async def request_cancel(self, owner: str, tenant: str, thread_id: str, run_id: str) -> None:
        """Asks the process `owner` to cancel a run it runs (the request lapses after a while)."""

    async def cancel_requests(self, owner: str) -> list[tuple[str, str, str]]:
        """(tenant, thread_id, run_id) of the cancels asked of owner."""

    async def clear_cancel_request(self, owner: str, tenant: str, run_id: str) -> None: ...

    async def heartbeat(self, owner: str, lease_seconds: int) -> None:
        """Records that owner is alive for the next lease_seconds."""

    async def live_owners(self) -> set[str]:
        """Owners whose last heartbeat has not yet lapsed."""

    async def commit(self, entries: Sequence[LogEntry]) -> None:
        """Appends events to their runs' logs and upserts their snapshots, all or nothing: a reader
        sees a run's events of one commit all or none, and no event before the snapshots it carries.
        A commit that failed may be committed again (everything in it is idempotent)."""

    async def last_sequence(self, tenant: str, run_id: str) -> int:
        """The highest sequence number in a run's log; 0 when it is empty."""

    async def read_events(
        self, tenant: str, run_id: str, after_sequence: int, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        """A run's committed events with a sequence number above after_sequence, in order, at most
        `limit` of them (read on from the last one for more)."""

    async def parents_of(self, tenant: str, kind: str, object_id: str) -> list[str]:
        """The parents under which an object id exists (e.g. the vector stores holding a file)."""

    async def objects_with_tag(self, kind: str, tag: str) -> list[tuple[str, bytes]]:
        """(tenant, data) of every object of a kind with a tag, across tenants (recovery at start-up)."""

    async def index_chunks(
        self, tenant: str, vector_store_id: str, file_id: str, chunks: Sequence[str], vectors: Sequence[bytes] = ()
    ) -> None:
        """Makes the chunks (and their unit float32 embeddings, if any) the file's searchable content
        in the vector store, replacing any before."""

    async def delete_chunks(self, tenant: str, vector_store_id: str, file_id: str = "") -> None:
        """Removes a file's chunks from the vector store, or all its chunks when file_id is ""."""

    async def search_chunks(
        self, tenant: str, vector_store_ids: Sequence[str], terms: Sequence[str], limit: int
    ) -> list[ChunkHit]:
        """Keyword search (any of the terms), best first."""

    async def search_vectors(
        self, tenant: str, vector_store_ids: Sequence[str], query: bytes, limit: int
    ) -> list[ChunkHit]:
        """Nearest chunks by cosine similarity to a unit float32 query vector, best first."""
