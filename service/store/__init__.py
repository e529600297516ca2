"""Storage: the Store protocol and its implementations, chosen by URL."""

import os

from service.store.base import DELETED_THREAD, ChunkHit, Key, Listing, ListQuery, LogEntry, Page, Record, Store
from service.store.blobs import BlobStore, LocalBlobs


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite://").removeprefix("/") or "data/assistd.db"


_EXPECTED = "expected sqlite:///path or cassandra://host1,host2:9042/keyspace"


def open_store(url: str) -> Store:
    """`sqlite:///relative/or//absolute/path.db` or `cassandra://host1,host2:9042/keyspace?consistency=LOCAL_QUORUM`
    -> a Store (not yet opened)."""
    if url.startswith("sqlite://"):
        from service.store.sqlite import SqliteStore

        return SqliteStore(_sqlite_path(url))
    if url.startswith("cassandra://"):
        from service.store.cassandra import CassandraStore

        return CassandraStore(url)
    raise ValueError(f"unsupported store URL {url!r}; {_EXPECTED}")


def open_blobs(url: str, store: Store) -> BlobStore:
    """Where file bytes go: `files/` beside the SQLite file, or chunk rows in Cassandra."""
    if url.startswith("sqlite://"):
        return LocalBlobs(os.path.join(os.path.dirname(_sqlite_path(url)) or ".", "files"))
    if url.startswith("cassandra://"):
        from service.store.cassandra import CassandraBlobs, CassandraStore

        assert isinstance(store, CassandraStore), "Cassandra blobs live in the Cassandra store"
        return CassandraBlobs(store)
    raise ValueError(f"unsupported store URL {url!r}; {_EXPECTED}")


__all__ = [
    "DELETED_THREAD",
    "BlobStore",
    "ChunkHit",
    "Key",
    "Listing",
    "ListQuery",
    "LogEntry",
    "Page",
    "Record",
    "Store",
    "open_blobs",
    "open_store",
]
