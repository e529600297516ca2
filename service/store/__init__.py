"""Storage: the Store protocol and its implementations, chosen by URL."""

import os

from service.store.base import ChunkHit, ListQuery, LogEntry, Page, Record, Store
from service.store.blobs import BlobStore, LocalBlobs


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite://").removeprefix("/") or "data/assistd.db"


def open_store(url: str) -> Store:
    """`sqlite:///relative/or//absolute/path.db` -> a Store (not yet opened)."""
    if url.startswith("sqlite://"):
        from service.store.sqlite import SqliteStore

        return SqliteStore(_sqlite_path(url))
    raise ValueError(f"unsupported store URL {url!r}; expected sqlite:///path")


def open_blobs(url: str) -> BlobStore:
    """Where file bytes go for a store URL: `files/` beside the SQLite file."""
    if url.startswith("sqlite://"):
        return LocalBlobs(os.path.join(os.path.dirname(_sqlite_path(url)) or ".", "files"))
    raise ValueError(f"unsupported store URL {url!r}; expected sqlite:///path")


__all__ = ["BlobStore", "ChunkHit", "ListQuery", "LogEntry", "Page", "Record", "Store", "open_blobs", "open_store"]
