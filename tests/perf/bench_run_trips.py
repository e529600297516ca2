"""The store work of one short run's start, as it was (8 trips) and as it is (3), on SQLite.

    python -m tests.perf.bench_run_trips [sqlite path]

Both sequences write and read what a run's start writes and reads up to its first model call:
the thread and assistant read, the claim, the first events (created, queued, in_progress) with
the run's snapshots, and the segment's read of the thread, its messages and the run's steps.
Before: a get, a get, claim_thread, the created/queued events through the event log's group
commit, a get, two lists, and in_progress through the group commit. Now: read_many,
claim_and_commit (the three events with the claim), read_many. Runs go 16 at once, as in the TTFT
figure, so the group commit shares its trips between them (as it does in the server); rounds
alternate. CPU is process_time (every thread: the loop and SQLite's); the figure is µs per run.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time

import uvloop
from assistd.v1 import run_pb2

from service.engine import lifecycle
from service.engine.events import EventLog, RunChannel
from service.store import Key, Listing, ListQuery, Record
from service.store.sqlite import SqliteStore

CONCURRENCY = 16
RUNS_PER_ROUND = 320
ROUNDS = 6
MESSAGE = os.urandom(300)
FIRST = ListQuery(limit=500, order="asc")


def _run(thread: str) -> run_pb2.Run:
    run = run_pb2.Run(id=f"run_{thread}", thread_id=thread, assistant_id="asst", status=run_pb2.RUN_STATUS_QUEUED)
    run.instructions = "x" * 400  # about a real run's size
    return run


async def _separate_trips(store: SqliteStore, log: EventLog, tenant: str, thread: str) -> None:
    run = _run(thread)
    await store.get(tenant, "thread", "", thread)
    await store.get(tenant, "assistant", "", "asst")
    assert await store.claim_thread(tenant, thread, run.id, "bench/n") is None
    channel = RunChannel(tenant, thread, run.id)
    await channel.committed(log.apply(channel, lifecycle.created(run)))
    await store.get(tenant, "thread", "", thread)
    await store.list_page(tenant, "message", thread, FIRST)
    await store.list_page(tenant, "step", run.id, FIRST)
    await channel.committed(log.apply(channel, lifecycle.begin(run, 1)))


async def _fewer_trips(store: SqliteStore, log: EventLog, tenant: str, thread: str) -> None:
    run = _run(thread)
    await store.read_many(tenant, [Key("thread", "", thread), Key("assistant", "", "asst")])
    channel = RunChannel(tenant, thread, run.id)
    entries, events = log.first_entries(channel, lifecycle.created(run))
    more, more_events = log.first_entries(channel, lifecycle.begin(run, 1))
    assert await store.claim_and_commit(tenant, thread, run.id, "bench/n", entries + more) is None
    log.committed_first(channel, events + more_events)
    await store.read_many(
        tenant, [Key("thread", "", thread)], [Listing("message", thread, FIRST), Listing("step", run.id, FIRST)]
    )


async def main(path: str) -> None:
    store = SqliteStore(path)
    await store.open()
    log = EventLog(store)
    log.start()
    tenant = "bench"
    threads = [f"thread_{i}" for i in range(RUNS_PER_ROUND * ROUNDS * 2)]
    await store.put(tenant, [Record("assistant", "", "asst", MESSAGE)])
    await store.put(tenant, [Record("thread", "", t, MESSAGE) for t in threads])
    await store.put(tenant, [Record("message", t, f"msg_{j}", MESSAGE) for t in threads for j in range(3)])
    cpu: dict[str, list[float]] = {"8 trips (before)": [], "3 trips (now)": []}
    wall: dict[str, list[float]] = {name: [] for name in cpu}
    fresh = iter(threads)
    for _ in range(ROUNDS):
        for name, start in zip(cpu, (_separate_trips, _fewer_trips), strict=True):
            batch = [next(fresh) for _ in range(RUNS_PER_ROUND)]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(0, RUNS_PER_ROUND, CONCURRENCY):
                await asyncio.gather(*(start(store, log, tenant, t) for t in batch[i : i + CONCURRENCY]))
            cpu[name].append((time.process_time() - cpu0) / RUNS_PER_ROUND * 1e6)
            wall[name].append((time.perf_counter() - wall0) / RUNS_PER_ROUND * 1e6)
    await log.stop()
    await store.close()
    print(
        f"| store work of a run's start, {CONCURRENCY} at once | CPU µs per run (median; rounds) | wall µs per run (median) |"
    )
    print("|---|---|---|")
    for name in cpu:
        rounds = ", ".join(f"{x:.0f}" for x in cpu[name])
        print(f"| {name} | {statistics.median(cpu[name]):.0f} ({rounds}) | {statistics.median(wall[name]):.0f} |")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.mkdtemp(), "trips.db")))
