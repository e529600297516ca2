"""Run ownership between processes: tokens, take-over rules, orphans and fencing, on a real SQLite store
that plays a shared one (two Ownership objects are two replicas)."""

import asyncio

import pytest

from service.engine.ownership import Monitor, Ownership, Token
from service.store.sqlite import SqliteStore


class SharedSqlite(SqliteStore):
    """SQLite standing in for a store several processes share; its heartbeat can be made to fail."""

    shared = True
    unreachable = False

    async def heartbeat(self, owner: str, lease_seconds: int) -> None:
        if self.unreachable:
            raise ConnectionError("store unreachable")
        await super().heartbeat(owner, lease_seconds)


@pytest.fixture
async def store(tmp_path):
    s = SharedSqlite(str(tmp_path / "own.db"))
    await s.open()
    yield s
    await s.close()


def test_tokens_round_trip_through_their_stored_form():
    for token in (Token("host-1-ab", "n1"), Token("host-1-ab", "n2", waiting=True)):
        assert Token.parse(str(token)) == token
    assert str(Token("p", "n", waiting=True)) == "p/n/w"
    assert Token.parse("") == Token("", "", False)  # a claim written without an owner


async def test_a_claim_is_exclusive_and_held_by_its_process(store):
    a, b = Ownership(store, 15, "a"), Ownership(store, 15, "b")
    assert await a.claim("t", "thread_1", "run_1") is None
    assert await b.claim("t", "thread_1", "run_2") == "run_1"
    assert await a.still_ours("t", "thread_1", "run_1") and not await b.still_ours("t", "thread_1", "run_1")
    assert (await a.current("t", "thread_1", "run_1")).owner == "a"
    assert await a.current("t", "thread_1", "run_2") is None


async def test_only_a_waiting_run_can_be_taken_for_a_submit_cancel_or_expiry(store):
    a, b = Ownership(store, 15, "a"), Ownership(store, 15, "b")
    await a.claim("t", "thread_1", "run_1")
    assert not await b.take_waiting("t", "thread_1", "run_1")  # a is working on it
    assert await a.mark_waiting("t", "thread_1", "run_1")
    assert (await a.current("t", "thread_1", "run_1")).waiting
    assert await b.take_waiting("t", "thread_1", "run_1")
    taken = await b.current("t", "thread_1", "run_1")
    assert taken.owner == "b" and not taken.waiting  # resumed: nobody else may take it now
    assert not await a.still_ours("t", "thread_1", "run_1")
    assert not await a.take_waiting("t", "thread_1", "run_1")


async def test_of_two_processes_taking_from_the_same_token_exactly_one_wins(store):
    a, b, c = (Ownership(store, 15, name) for name in "abc")
    await a.claim("t", "thread_1", "run_1")
    await a.mark_waiting("t", "thread_1", "run_1")
    results = await asyncio.gather(*(p.take_waiting("t", "thread_1", "run_1") for p in (b, c)))
    assert sorted(results) == [False, True]
    seen = await a.current("t", "thread_1", "run_1")
    assert not await b.take("t", "thread_1", "run_1", Token("a", "stale"))  # an old token takes nothing
    assert await a.current("t", "thread_1", "run_1") == seen


async def test_runs_of_an_owner_without_heartbeat_are_orphans(store):
    dead, alive = Ownership(store, 15, "dead"), Ownership(store, 15, "alive")
    await alive.heartbeat()
    await dead.claim("t", "thread_1", "run_1")
    await alive.claim("t", "thread_2", "run_2")
    orphans = await alive.orphans(running_here=set())
    assert [(o.thread_id, o.run_id, o.token.owner) for o in orphans] == [("thread_1", "run_1", "dead")]
    await dead.heartbeat()
    assert await alive.orphans(running_here=set()) == []


class _Host:
    def __init__(self):
        self.fenced = asyncio.Event()
        self.sweeps = 0

    def running(self):
        return {"run_1"}

    def fence(self):
        self.fenced.set()

    async def sweep(self):
        self.sweeps += 1
        return 0

    async def cancel_asked(self, tenant, thread_id, run_id):
        pass


async def test_a_process_that_cannot_renew_its_heartbeat_fences_its_runs(store):
    ownership = Ownership(store, 1, "a")  # a one-second lease: the monitor ticks every ~0.33 s
    host = _Host()
    monitor = Monitor(ownership, store, host)
    await monitor.start()
    try:
        while host.sweeps < 2:  # noqa: ASYNC110 - two rounds of heartbeats that go through: nothing to fence
            await asyncio.sleep(0.05)
        assert not host.fenced.is_set()
        store.unreachable = True
        await asyncio.wait_for(host.fenced.wait(), timeout=10)
    finally:
        monitor.stop()


async def test_our_own_runs_that_we_no_longer_hold_are_orphans_too(store):
    ours = Ownership(store, 15, "a")
    await ours.heartbeat()
    await ours.claim("t", "thread_1", "run_held")
    await ours.claim("t", "thread_2", "run_dropped")
    await ours.claim("t", "thread_3", "run_waiting")
    await ours.mark_waiting("t", "thread_3", "run_waiting")
    ours.forget("run_dropped")  # fenced, or its end could not be written
    found = await ours.orphans(running_here={"run_held"})
    assert [o.run_id for o in found] == ["run_dropped"]
    assert await ours.orphans(running_here=set()) == found  # held (starting, or waiting) is not an orphan
