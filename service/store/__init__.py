"""Storage: the Store protocol and its implementations, chosen by URL."""

from service.store.base import ListQuery, LogEntry, Page, Record, Store


def open_store(url: str) -> Store:
    """`sqlite:///relative/or//absolute/path.db` -> a Store (not yet opened)."""
    if url.startswith("sqlite://"):
        from service.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite://").removeprefix("/") or "data/assistd.db")
    raise ValueError(f"unsupported store URL {url!r}; expected sqlite:///path")


__all__ = ["ListQuery", "LogEntry", "Page", "Record", "Store", "open_store"]
