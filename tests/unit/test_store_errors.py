"""Stores raise typed store errors (service/store/errors.py), never their drivers' exceptions."""

import os
import sqlite3

import cassandra
import pytest
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown

from service.store import ListQuery
from service.store import cassandra as cassandra_store
from service.store import sqlite as sqlite_store
from service.store.errors import StoreError, StoreUnavailable
from tests.scripted_llm import free_port


def _locked_error(tmp_path) -> sqlite3.OperationalError:
    """A real "database is locked" error: a second writer that will not wait."""
    path = str(tmp_path / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        other.close()
        holder.close()
    raise AssertionError("the second writer was not refused")


def test_sqlite_busy_is_unavailable_and_other_errors_are_store_errors(tmp_path):
    assert isinstance(sqlite_store.store_error(_locked_error(tmp_path)), StoreUnavailable)
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as info:
        connection.execute("SELECT * FROM missing_table")
    error = sqlite_store.store_error(info.value)
    assert type(error) is StoreError and "missing_table" in str(error)


async def test_a_damaged_sqlite_store_raises_store_error_not_sqlite3(tmp_path):
    store = sqlite_store.SqliteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        with sqlite3.connect(tmp_path / "t.db") as raw:
            raw.execute("DROP TABLE objects")
        with pytest.raises(StoreError) as info:
            await store.get("tenant", "thread", "", "thread_1")
        assert not isinstance(info.value, StoreUnavailable)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "exc",
    [
        cassandra.Unavailable("not enough replicas"),
        cassandra.ReadTimeout("read timed out"),
        cassandra.WriteTimeout("write timed out", write_type=cassandra.WriteType.CAS),
        cassandra.OperationTimedOut("client timeout"),
        NoHostAvailable("no host", {}),
        ConnectionShutdown("closed"),
    ],
)
def test_cassandra_transient_failures_are_unavailable(exc):
    error = cassandra_store.store_error(exc)
    assert isinstance(error, StoreUnavailable) and error.__cause__ is exc


@pytest.mark.parametrize("exc", [cassandra.InvalidRequest("bad query"), cassandra.ReadFailure("tombstones")])
def test_cassandra_refusals_are_store_errors(exc):
    error = cassandra_store.store_error(exc)
    assert type(error) is StoreError and error.__cause__ is exc


async def test_a_cassandra_store_with_no_reachable_host_raises_store_unavailable():
    store = cassandra_store.CassandraStore(f"cassandra://127.0.0.1:{free_port()}/nowhere")
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.open()
        assert isinstance(info.value.__cause__, NoHostAvailable)
    finally:
        await store.close()


async def test_a_statement_cassandra_refuses_comes_out_as_store_error():
    """Through the driver's error callback, from a real Cassandra (the contract tests' keyspace)."""
    url = os.environ.get("ASSISTD_TEST_CASSANDRA", "cassandra://127.0.0.1:9042/assistd_contract")
    store = cassandra_store.CassandraStore(url)
    await store.open()
    try:
        with pytest.raises(StoreError) as info:  # Cassandra: "LIMIT must be strictly positive"
            await store.list_page("tenant", "message", "thread_1", ListQuery(limit=-1))
        assert not isinstance(info.value, StoreUnavailable)
        assert isinstance(info.value.__cause__, cassandra.InvalidRequest)
    finally:
        await store.close()
