"""Store benchmarks: SQLite vs Cassandra, store calls in-process and the same API workload."""

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from cassandra.cluster import Cluster

from service.engine.events import MAX_COMMIT
from service.ids import new_id
from service.store import ListQuery, LogEntry, Record, open_store
from tests.conftest import MODEL, ROOT, Server, cassandra_url
from tests.perf.stats import percentile

QUICK = os.environ.get("BENCH_QUICK") == "1"
CALLS = int(os.environ.get("BENCH_STORE_CALLS", 50 if QUICK else 300))
RATE_SECONDS = float(os.environ.get("BENCH_STORE_RATE_SECONDS", 1 if QUICK else 3))
WARM_SECONDS = float(os.environ.get("BENCH_STORE_WARM_SECONDS", 5))  # writes before the rates are timed
API_RUNS = int(os.environ.get("BENCH_STORE_RUNS", 10 if QUICK else 30))


def _ms(values) -> str:
    return f"{statistics.median(values) * 1000:.2f} / {percentile(values, 99) * 1000:.2f}"


async def _timed(calls) -> list[float]:
    latencies = []
    for call in calls:
        start = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - start)
    return latencies


async def store_calls(url: str) -> dict[str, str]:
    store = open_store(url)
    await store.open()
    try:
        tenant = f"bench-{uuid.uuid4().hex[:8]}"
        ids = [new_id("msg_") for _ in range(CALLS)]
        payload = b"x" * 600  # about a stored message
        results = {}
        results["put (1 message)"] = _ms(
            await _timed(lambda i=i: store.put(tenant, [Record("message", "th", i, payload)]) for i in ids)
        )
        results["get"] = _ms(await _timed(lambda i=i: store.get(tenant, "message", "th", i) for i in ids))
        results["list_page (20, desc)"] = _ms(
            await _timed(
                lambda i=i: store.list_page(tenant, "message", "th", ListQuery(limit=20, after=i)) for i in ids[::-1]
            )
        )

        async def claim_release(i):
            await store.claim_thread(tenant, f"th{i}", f"run{i}", "bench")
            await store.release_thread(tenant, f"th{i}", f"run{i}")

        results["claim + release (one active run)"] = _ms(
            await _timed(lambda i=i: claim_release(i) for i in range(CALLS))
        )
        results["commit (10 events + 1 snapshot)"] = _ms(
            await _timed(
                lambda n=n: store.commit(
                    [
                        LogEntry(
                            tenant,
                            "run_b",
                            n * 10 + k + 1,
                            payload[:120],
                            [Record("run", "th", "run_b", payload)] if k == 9 else [],
                        )
                        for k in range(10)
                    ]
                )
                for n in range(CALLS)
            )
        )
        # event-log append rate: batches of 50 (what the group commit builds under load), for a few s,
        # after WARM_SECONDS untimed: a Cassandra node started minutes ago has not compiled its write
        # path yet (a fresh node measured a quarter of the rate of one an hour of tests had warmed)
        event = payload[:120]
        await _append_rate(store, tenant, event, ["run_warm"], 50, WARM_SECONDS)
        rate = await _append_rate(store, tenant, event, ["run_rate"], 50, RATE_SECONDS)
        results["event-log append rate (batches of 50)"] = f"{rate:,.0f} events/s"
        # under load: commits at the group commit's cap, with the events of 16 runs at once
        runs, per_run = [f"run_load{r}" for r in range(16)], MAX_COMMIT // 16
        rate = await _append_rate(store, tenant, event, runs, per_run, RATE_SECONDS)
        results[f"event-log append rate (commits of {MAX_COMMIT}: 16 runs x {per_run} events)"] = (
            f"{rate:,.0f} events/s"
        )
        return results
    finally:
        await store.close()


async def _append_rate(store, tenant: str, event: bytes, runs: list[str], per_run: int, seconds: float) -> float:
    """Events/s of sequential commits for `seconds`, each commit per_run new events of every run."""
    sequence, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await store.commit([LogEntry(tenant, run, sequence + k + 1, event) for run in runs for k in range(per_run)])
        sequence += per_run
    return sequence * len(runs) / (time.perf_counter() - start)


def api_workload(provider, url: str, runs: int = API_RUNS) -> tuple[float, list[float]]:
    """create thread + message + streamed run, sequentially: (runs/s, latencies)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), provider, {"ASSISTD_STORE": url}).start()
        try:
            client = server.client()
            assistant = client.beta.assistants.create(model=MODEL)
            latencies = []
            start = time.perf_counter()
            for _ in range(runs):
                t0 = time.perf_counter()
                thread = client.beta.threads.create()
                client.beta.threads.messages.create(
                    thread_id=thread.id, role="user", content="[reply:Hello there, how are you?]"
                )
                for _ in client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True):
                    pass
                latencies.append(time.perf_counter() - t0)
            return runs / (time.perf_counter() - start), latencies
        finally:
            server.stop()


CLUSTER = "cassandra://127.0.0.2,127.0.0.3,127.0.0.4:9042/{keyspace}?replication_factor=3&consistency=LOCAL_QUORUM"


def cluster_url() -> str:
    """A fresh keyspace on the local three-node cluster (`make cassandra-cluster`)."""
    return CLUSTER.format(keyspace=f"assistd_bench_{uuid.uuid4().hex[:10]}")


def cluster_up() -> bool:
    return subprocess.run([ROOT / "tools" / "cassandra" / "cluster.sh", "status"], capture_output=True).returncode == 0


def _drop_keyspace(url: str) -> None:
    """DROP KEYSPACE for a cassandra:// store URL (one host or a comma-separated list)."""
    parsed = urlparse(url)
    hosts, _, port = parsed.netloc.rpartition(":")
    cluster = Cluster(hosts.split(","), port=int(port or 9042))
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {parsed.path.strip('/')}", timeout=120)
    finally:
        cluster.shutdown()


def run(provider) -> str:
    made: list[str] = []  # Cassandra keyspaces made here, dropped at the end

    def cassandra(url: str) -> str:
        made.append(url)
        return url

    try:
        with tempfile.TemporaryDirectory() as tmp:
            # each store kind -> a fresh store of that kind (its own file or keyspace)
            fresh = {
                "SQLite": lambda name: f"sqlite:///{tmp}/{name}.db",
                "Cassandra 5.0": lambda name: cassandra(cassandra_url()),
            }
            if cluster_up():
                fresh["Cassandra 5.0, 3 nodes"] = lambda name: cassandra(cluster_url())
            stores = {kind: make("bench") for kind, make in fresh.items()}
            calls = {kind: asyncio.run(store_calls(url)) for kind, url in stores.items()}
            workloads = {kind: api_workload(provider, make("api")) for kind, make in fresh.items()}
    finally:  # every keyspace left behind costs the shared nodes heap
        for url in made:
            _drop_keyspace(url)
    names = list(stores)
    rows = [f"| {what} | " + " | ".join(calls[n][what] for n in names) + " |" for what in calls[names[0]]]
    workload = [
        f"| create thread + message + streamed run ({API_RUNS}, sequential) | "
        + " | ".join(
            f"{rate:.1f} runs/s, p50 {statistics.median(times) * 1000:.0f} ms / p99 {percentile(times, 99) * 1000:.0f} ms"
            for rate, times in (workloads[n] for n in names)
        )
        + " |"
    ]
    return f"""## Stores: SQLite vs Cassandra 5.0

Same machine, same run. Store calls are timed in-process ({CALLS} sequential calls each, p50 / p99 ms) against the
embedded SQLite file, the single-node Cassandra 5.0 that `make cassandra` starts (2 GB heap, consistency
LOCAL_QUORUM, replication factor 1) and, when it runs, the three-node cluster of `make cassandra-cluster` (768 MB
heap per node, all on this machine's 2 cores; replication factor 3, LOCAL_QUORUM: every write waits for 2 of 3
nodes). Event-log commits are one single-partition unlogged batch per run, the runs of one commit written
concurrently. The append rates are sequential commits for a few seconds, after {WARM_SECONDS:.0f} s of untimed ones (warm-up): batches of 50 events of
one run, then
commits as the event log's group commit builds them under load (at its cap of {MAX_COMMIT} entries, 16 runs' events
in each). The workload row goes through the HTTP API into `assistd serve` on each store.

| store call | {" | ".join(names)} |
|{"---|" * (len(names) + 1)}
{chr(10).join(rows)}
{chr(10).join(workload)}
"""


if __name__ == "__main__":  # python -m tests.perf.bench_stores URL...: the store calls alone, per URL
    for url in sys.argv[1:]:
        print(url, asyncio.run(store_calls(url)))
