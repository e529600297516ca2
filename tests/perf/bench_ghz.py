"""ghz against assistd, by server reflection (no .proto files): a unary call, WatchRun on a finished
run, and CreateThreadAndRunStream at rising concurrency.

ghz is a Go program the project builds itself (`make ghz`: a pinned version, `go install` from the Go
module proxy into .cache/ghz/<version>/); GHZ names the binary, else that path is used.
"""

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

GHZ_VERSION = "v0.120.0"  # keep in step with the Makefile
QUICK = os.environ.get("BENCH_QUICK") == "1"


def ghz_path() -> Path:
    return Path(os.environ.get("GHZ") or ROOT / ".cache" / "ghz" / GHZ_VERSION / "ghz")


def _levels() -> list[int]:
    raw = os.environ.get("BENCH_GHZ_LEVELS")
    if raw:
        return [int(x) for x in raw.split(",")]
    return [1, 16] if QUICK else [1, 16, 64, 256]


def _count(name: str, quick: int, full: int) -> int:
    return int(os.environ.get(f"BENCH_GHZ_{name}", quick if QUICK else full))


def ghz(target: str, call: str, data: dict | None, n: int, c: int, timeout: float = 120) -> dict:
    """One ghz run; its JSON report (durations in ns)."""
    args = [str(ghz_path()), "--insecure", "--call", call, "-n", str(n), "-c", str(c), "--timeout", "60s"]
    args += ["--format", "json", "--skipFirst", "0"]
    if data is not None:
        args += ["-d", json.dumps(data)]
    done = subprocess.run([*args, target], capture_output=True, text=True, timeout=timeout, check=False)
    if not done.stdout.strip():
        raise RuntimeError(f"ghz failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return json.loads(done.stdout)


def _latency(report: dict, percentage: int) -> float:
    for point in report.get("latencyDistribution") or []:
        if point["percentage"] == percentage:
            return point["latency"] / 1e6
    return float("nan")


def _errors(report: dict) -> str:
    errors = report.get("errorDistribution") or {}
    return ", ".join(f"{n} {msg[:60]}" for msg, n in errors.items()) or "none"


def _row(what: str, report: dict, per_call: int = 0) -> str:
    extra = f" ({report['rps'] * per_call:,.0f} msgs/s)" if per_call else ""
    return (
        f"| {what} | {report['count']:,} | {report['rps']:,.0f}{extra} | {_latency(report, 50):.1f} "
        f"| {_latency(report, 99):.1f} | {_errors(report)} |"
    )


def run(bench, command: str) -> str:
    """The ghz section of BENCHMARKS.md, or a note of why it could not be measured."""
    if not ghz_path().exists():
        return f"""## ghz by reflection

Not measured: {ghz_path()} is missing (`make ghz` builds it; it needs Go and the Go module proxy).
"""
    target, relay = bench.server.grpc_target, bench.grpc_relay.target
    unary, watch = _count("UNARY", 500, 10000), _count("WATCH", 200, 3000)
    rows = []
    ghz(target, "assistd.v1.ModelService/ListModels", None, 20, 1)  # warm-up: reflection, connection
    rows.append(
        _row(
            "minimal grpc.aio server `grpc.health.v1.Health/Check`, c=16",
            ghz(relay, "grpc.health.v1.Health/Check", None, unary, 16),
        )
    )
    rows.append(
        _row("assistd `grpc.health.v1.Health/Check`, c=16", ghz(target, "grpc.health.v1.Health/Check", None, unary, 16))
    )
    rows.append(
        _row(
            "assistd `ModelService/ListModels`, c=16",
            ghz(target, "assistd.v1.ModelService/ListModels", None, unary, 16),
        )
    )
    # a finished run to watch: its whole log replayed by each call
    thread_id = bench.threads(1, "[chunks:20]")[0]
    finished = bench.streams("assistd_grpc", 1, "[chunks:20]", threads=[thread_id])
    events = finished["events"]
    run_id = _run_id(bench, thread_id)
    report = ghz(target, "assistd.v1.RunService/WatchRun", {"run_id": run_id}, watch, 16)
    rows.append(_row(f"assistd `RunService/WatchRun` on a finished run ({events} events), c=16", report, events))
    message = {"role": "MESSAGE_ROLE_USER", "content": [{"text": {"value": "[chunks:10]"}}]}
    data = {"assistant_id": bench.assistant_id, "thread": {"messages": [message]}}
    for c in _levels():
        n = max(2 * c, 20) if QUICK else max(4 * c, 50)
        report = ghz(target, "assistd.v1.RunService/CreateThreadAndRunStream", data, n, c, timeout=300)
        rows.append(_row(f"assistd `RunService/CreateThreadAndRunStream` (10-chunk answer), c={c}", report))
    return f"""## ghz by reflection

{command}

ghz {GHZ_VERSION} (`make ghz`: `go install github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}` into
`.cache/ghz/{GHZ_VERSION}/`), with no .proto files: methods are found by server reflection (v1, v1alpha as the
fallback). One connection, `-c` workers. Latency is per call: for a stream, the whole call. The first row is a
minimal grpc.aio server (tests/perf/relay_grpc.py) answering the standard health check: the floor for a Python
unary call here.

| call | calls | calls/s | p50 ms | p99 ms | errors |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def _run_id(bench, thread_id: str) -> str:
    client = bench.server.client()
    return client.beta.threads.runs.list(thread_id=thread_id, limit=1).data[0].id
