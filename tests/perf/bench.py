"""`make bench`: what assistd costs on top of the model, as ratios measured side by side in one run.

Every figure compares assistd with (a) the scripted provider read directly by a raw aiohttp SSE
client and (b) a minimal aiohttp SSE relay and a minimal grpc.aio relay of the same provider stream
(tests/perf/relay_*.py: they do nothing but relay, so they bound what any server can do here). The
provider, the relays, `assistd serve`, and the load client (tests/perf/loadgen.py) are separate
processes on this machine; 2 shared cores are noisy, so read the ratios, not the absolute numbers.

    python -m tests.perf.bench              every section; writes BENCHMARKS.md and the PNG plots
    python -m tests.perf.bench ttft sweep   only these sections, printed (BENCHMARKS.md untouched)

Sizes come from the environment (see SIZES); BENCH_QUICK=1 picks small ones (~2 minutes in all).
"""

import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tests import openapi_fuzz
from tests.conftest import MODEL, ROOT, Server
from tests.perf import bench_ghz, bench_retrieval, bench_stores, plot
from tests.perf.procs import LoadGen, Provider, Relay, cpu_seconds, rss_bytes, wait_idle
from tests.perf.stats import percentile
from tests.scripted_llm import free_port

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks Assistants deprecated

QUICK = os.environ.get("BENCH_QUICK") == "1"


def _size(name: str, quick, full):
    """A size from BENCH_<NAME>, else the quick or the full default."""
    raw = os.environ.get(f"BENCH_{name}")
    default = quick if QUICK else full
    if raw is None:
        return default
    return [int(x) for x in raw.split(",")] if isinstance(default, list) else type(default)(raw)


SIZES = {
    "TTFT_STREAMS": _size("TTFT_STREAMS", 16, 16),  # concurrent streams in the TTFT figure
    "TTFT_ROUNDS": _size("TTFT_ROUNDS", 3, 12),  # rounds of them per row, rows interleaved
    "TTFT_CHUNKS": _size("TTFT_CHUNKS", 5, 5),  # chunks per stream (20 ms each)
    "CHUNKS": _size("CHUNKS", 500, 5000),  # one-stream throughput: chunks of a burst answer
    "THROUGHPUT_ROUNDS": _size("THROUGHPUT_ROUNDS", 2, 3),
    "SWEEP": _size("SWEEP", [1, 16, 64], [1, 4, 16, 64, 256, 1000, 2000]),  # concurrency levels
    "SWEEP_CHUNKS": _size("SWEEP_CHUNKS", 10, 10),  # chunks per stream (20 ms each)
    "SWEEP_TIMEOUT": _size("SWEEP_TIMEOUT", 15.0, 60.0),  # seconds a level may take; the rest is cut
    "SWEEP_SAMPLES": _size("SWEEP_SAMPLES", 8, 16),  # low levels repeat until this many streams were seen
    "WATCHERS": _size("WATCHERS", 1000, 10000),  # idle watchers on a held run
    "STARTS": _size("STARTS", 1, 3),  # fresh processes timed from spawn to /healthz
    "BURST": _size("BURST", 8000, 8000),  # chunks of the burst that must not starve /healthz
    "HISTORY": _size("HISTORY", 1000, 1000),  # messages in the long thread
    "HISTORY_RUNS": _size("HISTORY_RUNS", 4, 15),
    "FUZZ_EXAMPLES": _size("FUZZ_EXAMPLES", 10, 180),  # schemathesis cases per operation (fuzzing phase)
}
SLOW = 0.02  # the provider's seconds per chunk wherever a figure says "20 ms per chunk"
LABELS = {
    "direct": "provider direct (raw aiohttp SSE reader)",
    "sse_relay": "minimal aiohttp SSE relay",
    "grpc_relay": "minimal grpc.aio relay",
    "assistd_grpc": "assistd gRPC `CreateRunStream`",
    "assistd_sse": "assistd SSE `POST /v1/threads/{id}/runs` (raw SSE reader)",
    "assistd_split_sse": "assistd split, SSE: `assistd edge` -> gRPC -> `assistd service`",
}
SHORT = {
    "direct": "provider",
    "sse_relay": "SSE relay",
    "grpc_relay": "gRPC relay",
    "assistd_grpc": "assistd gRPC",
    "assistd_sse": "assistd SSE",
    "assistd_split_sse": "assistd split SSE",
}
# BENCH_ROWS picks rows (e.g. only the bounds while working on them); the provider row is always
# run: every other row is read against it.
ROWS = [
    "direct",
    *(r for r in os.environ.get("BENCH_ROWS", ",".join(LABELS)).split(",") if r in LABELS and r != "direct"),
]
SWEEP_ROWS = [r for r in ROWS if r != "assistd_split_sse"]  # the split deployment: TTFT and throughput only


def command(section: str) -> str:
    """The command that reproduces a section with this run's sizes."""
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_"))
    return f"`{env + ' ' if env else ''}python -m tests.perf.bench {section}` (part of `make bench`)"


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def p50(values) -> float:
    return statistics.median(values) if values else float("nan")


def p99(values) -> float:
    return percentile(values, 99) if values else float("nan")


def errors_text(errors: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(errors.items())) or "none"


class Bench:
    """The processes every section shares: provider, relays, one `assistd serve`, the client."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.provider = Provider()
        self.sse_relay = Relay("sse", self.provider)
        self.grpc_relay = Relay("grpc", self.provider)
        # heartbeats at the default (15 s), not the tests' 0.5 s: idle streams should stay idle
        env = {"ASSISTD_HEARTBEAT_SECONDS": "15"}
        (tmp / "split").mkdir()
        # `assistd serve`, and the split deployment's service, start side by side (each takes seconds)
        with ThreadPoolExecutor(2) as pool:
            serve = pool.submit(Server(tmp, self.provider, env).start)
            service = pool.submit(Server(tmp / "split", self.provider, env).start, "service")
            self.server, self.split_service = serve.result(), service.result()
        edge_env = {**env, "ASSISTD_GRPC_TARGET": self.split_service.grpc_target}
        self.split_edge = Server(tmp / "split", self.provider, edge_env).start("edge")
        self.client = LoadGen()
        self.assistant_id = self.server.client().beta.assistants.create(model=MODEL).id
        self.split_assistant_id = self.split_edge.client().beta.assistants.create(model=MODEL).id
        self.pids = {
            "direct": [self.provider.pid],
            "sse_relay": [self.sse_relay.pid],
            "grpc_relay": [self.grpc_relay.pid],
            "assistd_grpc": [self.server.process.pid],
            "assistd_sse": [self.server.process.pid],
            "assistd_split_sse": [self.split_service.process.pid, self.split_edge.process.pid],
        }

    def stop(self) -> None:
        for child in (self.client, self.grpc_relay, self.sse_relay):
            child.stop()
        self.split_edge.stop()
        self.split_service.stop()
        self.server.stop()
        self.provider.stop()

    def threads(self, n: int, text: str, history: int = 0, row: str = "assistd_grpc") -> list[str]:
        """N threads on the assistd that serves this row."""
        target = self.split_service.grpc_target if row == "assistd_split_sse" else self.server.grpc_target
        return self.client.call(op="threads", target=target, n=n, text=text, history=history)["threads"]

    def streams(self, row: str, concurrency: int, text: str, timeout: float = 60.0, threads=None) -> dict:
        """C streams of one row at once; assistd rows get fresh threads (one active run per thread)."""
        common = {"op": "streams", "concurrency": concurrency, "timeout": timeout}
        messages = [{"role": "user", "content": text}]
        if row == "direct":
            return self.client.call(
                **common, kind="chat", url=self.provider.base_url + "/chat/completions", messages=messages
            )
        if row == "sse_relay":
            return self.client.call(
                **common, kind="chat", url=self.sse_relay.base_url + "/chat/completions", messages=messages
            )
        if row == "grpc_relay":
            return self.client.call(**common, kind="grpc_relay", target=self.grpc_relay.target, messages=messages)
        threads = threads or self.threads(concurrency, text, row=row)
        if row == "assistd_split_sse":
            return self.client.call(
                **common,
                kind="assistd_sse",
                url=self.split_edge.base_url,
                threads=threads,
                assistant_id=self.split_assistant_id,
            )
        where = {"url": self.server.base_url} if row == "assistd_sse" else {"target": self.server.grpc_target}
        return self.client.call(**common, kind=row, threads=threads, assistant_id=self.assistant_id, **where)

    def warm_up(self) -> None:
        """One small round per row: first connections, lazy imports, the first model call."""
        for row in ROWS:
            self.streams(row, 2, "[chunks:3]")


# -- sections ------------------------------------------------------------------------------------


def section_ttft(bench: Bench) -> str:
    n, rounds, chunks = SIZES["TTFT_STREAMS"], SIZES["TTFT_ROUNDS"], SIZES["TTFT_CHUNKS"]
    text = f"[chunks:{chunks}][slow:{SLOW}]"
    samples: dict[str, list[float]] = {row: [] for row in ROWS}
    errors: dict[str, dict] = {row: {} for row in ROWS}
    cpu: dict[str, float] = dict.fromkeys(ROWS, 0.0)
    for _ in range(rounds):  # rows interleaved round by round, so drift hits them alike
        for row in ROWS:
            threads = bench.threads(n, text, row=row) if row.startswith("assistd") else None  # not counted
            before = cpu_seconds(*bench.pids[row])
            result = bench.streams(row, n, text, threads=threads)
            cpu[row] += cpu_seconds(*bench.pids[row]) - before
            samples[row] += result["ttft"]
            for k, v in result["errors"].items():
                errors[row][k] = errors[row].get(k, 0) + v
    base50, base99 = p50(samples["direct"]), p99(samples["direct"])
    lines = []
    for row in ROWS:
        s = samples[row]
        lines.append(
            f"| {LABELS[row]} | {ms(p50(s))} / {ms(p99(s))} | {ms(p50(s) - base50)} / {ms(p99(s) - base99)} "
            f"| {p50(s) / base50:.2f}x | {cpu[row] / (rounds * n) * 1000:.2f} | {errors_text(errors[row])} |"
        )
    return f"""## Time to first token, {n} concurrent streams, provider at 20 ms per chunk

{command("ttft")}

{rounds} rounds of {n} streams started at once, per row, rows interleaved ({rounds * n} samples each). Each stream
answers {chunks} chunks, one every {SLOW * 1000:.0f} ms. TTFT = request sent -> first text chunk received. Through
assistd the thread exists beforehand; the request creates the run (persisted), builds the prompt, calls the provider,
logs and streams every event. Added = this row minus the provider's own figure (p50 from p50, p99 from p99).
CPU per stream = CPU time of the serving process (assistd: the whole `assistd serve`, split: service + edge; relays:
the relay; first row: the provider) over the timed streams / their number: what one short streamed run costs whatever else runs here.

| path | TTFT p50 / p99 ms | added p50 / p99 ms | p50 vs provider | CPU ms per stream | errors |
|---|---|---|---|---|---|
{chr(10).join(lines)}
"""


def section_throughput(bench: Bench) -> str:
    n, rounds = SIZES["CHUNKS"], SIZES["THROUGHPUT_ROUNDS"]
    text = f"[chunks:{n}]"
    rates: dict[str, list[float]] = {row: [] for row in ROWS}
    ttfts: dict[str, list[float]] = {row: [] for row in ROWS}
    cpu: dict[str, float] = dict.fromkeys(ROWS, 0.0)
    chunks: dict[str, int] = dict.fromkeys(ROWS, 0)
    errors: dict[str, dict] = {row: {} for row in ROWS}
    for _ in range(rounds):
        for row in ROWS:
            threads = bench.threads(1, text, row=row) if row.startswith("assistd") else None  # not timed
            wait_idle(bench.pids[row], limit=10)
            before = cpu_seconds(*bench.pids[row])
            result = bench.streams(row, 1, text, timeout=120, threads=threads)
            cpu[row] += cpu_seconds(*bench.pids[row]) - before
            chunks[row] += result["chunks"]
            errors[row] = {**errors[row], **result["errors"]}
            if result["durations"]:
                rates[row].append(result["chunks"] / result["durations"][0])
                ttfts[row] += result["ttft"]
    relay = p50(rates["sse_relay"])
    lines = []
    for row in ROWS:
        who = {"direct": "provider", "sse_relay": "relay", "grpc_relay": "relay"}.get(row, "assistd")
        who = "service + edge" if row == "assistd_split_sse" else who
        per_chunk = cpu[row] / chunks[row] * 1e6 if chunks[row] else float("nan")
        lines.append(
            f"| {LABELS[row]} | {p50(rates[row]):,.0f} | {p50(rates[row]) / relay:.0%} | {ms(p50(ttfts[row]))} "
            f"| {per_chunk:,.0f} ({who}) | {errors_text(errors[row])} |"
        )
    return f"""## One stream: throughput, TTFT of a burst, CPU per chunk

{command("throughput")}

One stream at a time, {rounds} rounds per row (rows interleaved): the provider sends {n:,} chunks as fast as it can.
chunks/s = text chunks received / stream duration (p50 of the rounds); through assistd, chunks are counted in the
text (its words "w0 w1 ...", one per provider chunk), since under backlog assistd merges consecutive text deltas. TTFT here is for an answer that arrives in one
burst (a fast model or a buffered provider). CPU µs per chunk = CPU time (user + system, all threads, from
`/proc/<pid>/stat` via psutil) of the process that serves the row, over all rounds, divided by the chunks: for
assistd that is the whole `assistd serve` process (service + edge), for the split deployment both processes, for the
relays the relay, for the first row the provider itself. The split row against `assistd SSE` is the cost of the
loopback gRPC hop between edge and service (plus a second event loop).

| path | chunks/s (p50) | % of the SSE relay | burst TTFT p50 ms | CPU µs per chunk | errors |
|---|---|---|---|---|---|
{chr(10).join(lines)}
"""


def _probe(port: int, path: str, stop: threading.Event, into: list[float]) -> None:
    """GETs path every 5 ms on one kept-alive connection until stop is set: each answer's latency."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while not stop.is_set():
            start = time.perf_counter()
            connection.request("GET", path)
            connection.getresponse().read()
            into.append(time.perf_counter() - start)
            time.sleep(0.005)
    finally:
        connection.close()


def _probed(port: int, path: str, work) -> tuple[list[float], object]:
    """The probe's latencies while work() runs, and work's result."""
    latencies: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(port, path, stop, latencies))
    prober.start()
    try:
        result = work()
    finally:
        stop.set()
        prober.join()
    return latencies, result


def section_starve(bench: Bench) -> str:
    """Does one burst answer starve the rest of the server? Another client's small requests,
    timed while a stream relays a burst, against the same requests on the idle process."""
    n = SIZES["BURST"]
    text = f"[chunks:{n}]"
    targets = {
        "sse_relay": (bench.sse_relay.port, "/", "`GET /` (a 404: the relay serves nothing else)"),
        "assistd_sse": (bench.server.http_port, "/healthz", "`GET /healthz`"),
    }
    lines = []
    for row, (port, path, what) in targets.items():
        threads = bench.threads(1, text, row=row) if row.startswith("assistd") else None  # not timed
        wait_idle(bench.pids[row], limit=10)
        idle, _ = _probed(port, path, partial(time.sleep, 1.0))
        busy, result = _probed(port, path, partial(bench.streams, row, 1, text, timeout=120, threads=threads))
        assert isinstance(result, dict)
        duration = result["durations"][0] if result["durations"] else float("nan")
        lines.append(
            f"| {LABELS[row]} | {what} | {ms(p50(idle))} / {ms(max(idle))} | {ms(p50(busy))} / {ms(p99(busy))} "
            f"/ {ms(max(busy))} | {len(busy)} | {duration:.2f} s | {errors_text(result['errors'])} |"
        )
    return f"""## One burst must not starve the server

{command("starve")}

A provider answer of {n:,} chunks sent at once (a fast model, or a buffered provider), streamed to one client; meanwhile
a second client (a thread of the bench process, one kept-alive HTTP connection) sends a small request every 5 ms
and times each answer. Idle = the same requests for 1 s before the burst. The stream reader yields to the event loop
every few lines of a buffered stream (service/llm/openai_compat.py), so other requests are answered during a burst.

| path | probe | idle p50 / max ms | during the burst p50 / p99 / max ms | probes during the burst | burst duration | errors |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}
"""


def _level(bench: Bench, row: str, level: int, text: str, timeout: float) -> dict:
    """One level of one row: rounds of `level` streams until SWEEP_SAMPLES first tokens were seen
    (one stream is one sample: a p99 of one is no figure), merged into one result."""
    total: dict = {"ttft": [], "errors": {}, "chunks": 0, "wall": 0.0, "no_first_token": 0}
    for _ in range(max(1, -(-SIZES["SWEEP_SAMPLES"] // level))):
        threads = bench.threads(level, text, row=row) if row.startswith("assistd") else None  # not timed
        result = bench.streams(row, level, text, timeout=timeout, threads=threads)
        total["ttft"] += result["ttft"]
        total["chunks"] += result["chunks"]
        total["wall"] += result["wall"]
        total["no_first_token"] += result["no_first_token"]
        for k, v in result["errors"].items():
            total["errors"][k] = total["errors"].get(k, 0) + v
        if result["errors"]:
            break  # a level that fails is not repeated
    return total


def section_sweep(bench: Bench, out: Path | None) -> str:
    levels, chunks, timeout = SIZES["SWEEP"], SIZES["SWEEP_CHUNKS"], SIZES["SWEEP_TIMEOUT"]
    text = f"[chunks:{chunks}][slow:{SLOW}]"
    points: dict[str, list[dict]] = {row: [] for row in SWEEP_ROWS}
    table, skipped = [], {}
    for level in levels:
        base = None
        for row in SWEEP_ROWS:
            if row in skipped:
                table.append(f"| {level:,} | {SHORT[row]} | skipped: {skipped[row]} | | | | |")
                continue
            wait_idle(bench.pids[row], limit=timeout)  # what an earlier level left running
            result = _level(bench, row, level, text, timeout)
            ttft = result["ttft"]
            failed = sum(result["errors"].values())
            if row == "direct":
                base = ttft
            rate = result["chunks"] / result["wall"]
            if ttft:
                points[row].append(
                    {"concurrency": level, "p50": p50(ttft) * 1000, "p99": p99(ttft) * 1000, "events_per_s": rate}
                )
            added = ms(p99(ttft) - p99(base)) if ttft and base else "n/a"
            missing = f" ({result['no_first_token']:,} had no first token)" if result["no_first_token"] else ""
            table.append(
                f"| {level:,} | {SHORT[row]} | {ms(p50(ttft))} | {ms(p99(ttft))} | {added} | {rate:,.0f} "
                f"| {errors_text(result['errors'])}{missing} |"
            )
            if failed * 2 > level or result["errors"].get("timeout"):
                skipped[row] = f"at {level:,} streams it ran into the {timeout:.0f} s bound or failed half"
            if row.startswith("assistd"):
                wait_idle(bench.pids[row], limit=timeout)
    # runs whose clients were cut go on in the service: let them end before the next section
    drained = wait_idle([bench.server.process.pid], limit=300)
    plots = ""
    if out is not None:
        plot.sweep(points, SHORT, out / "bench-sweep-ttft.png", out / "bench-sweep-events.png")
        plots = "\n![TTFT vs concurrency](bench-sweep-ttft.png)\n![text deltas per second vs concurrency](bench-sweep-events.png)\n"
    return f"""## Concurrency sweep: TTFT and text deltas per second, 1 to {max(levels):,} streams

{command("sweep")}

At each level, C streams start at once on every row, one row after the other; each answers {chunks} chunks at
{SLOW * 1000:.0f} ms. Levels below {SIZES["SWEEP_SAMPLES"]} streams are repeated until {SIZES["SWEEP_SAMPLES"]} streams were seen. A level is bounded by {timeout:.0f} s: streams still open then are cut and counted as
`timeout`, and a row that hits the bound (or fails half its streams) skips the higher levels. Runs that assistd goes
on with after their client was cut are waited for before the next row. Text deltas/s = text chunks received by the
client / the level's wall time. TTFT percentiles are over the streams that had a first token (cut ones too); those
that had none within the bound are counted in the errors column. Added p99 = this row's TTFT p99 minus the provider's
at the same level. One client
process (uvloop) drives every row, one HTTP connection per SSE stream, one HTTP/2 channel per gRPC target. After
the last level assistd was busy for another {drained:.0f} s (runs it went on with after their clients were cut).
{plots}
| streams | path | TTFT p50 ms | TTFT p99 ms | added p99 ms | text deltas/s | errors |
|---|---|---|---|---|---|---|
{chr(10).join(table)}
"""


def _spawn_assistd(tmp: Path, provider: Provider) -> tuple[subprocess.Popen, int, int, float]:
    """A fresh `assistd serve` with no model list (nothing litellm-only configured), timed from
    spawn to the first 200 from /healthz: (process, http port, grpc port, seconds)."""
    http, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "ASSISTD_HTTP_PORT": str(http),
        "ASSISTD_GRPC_PORT": str(grpc_port),
        "ASSISTD_STORE": f"sqlite:///{tmp}/fresh-{http}.db",
        "OPENAI_API_BASE": provider.base_url,
        "OPENAI_API_KEY": "bench",
    }
    env.pop("ASSISTD_MODELS", None)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / f"fresh-{http}.log", "wb"),  # the child process writes it
    )
    seconds = _wait_http(f"http://127.0.0.1:{http}/healthz", process, start)
    return process, http, grpc_port, seconds


def _wait_http(url: str, process: subprocess.Popen, start: float, limit: float = 120.0) -> float:
    """Polls url every 10 ms until any HTTP answer; returns seconds since start."""
    while time.perf_counter() - start < limit:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return time.perf_counter() - start
        except urllib.error.HTTPError:
            return time.perf_counter() - start  # any answer counts (the relay has no /healthz)
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer in {limit} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def section_start(bench: Bench) -> str:
    rows = []
    starts, rss, first, second = [], [], [], []
    for _ in range(SIZES["STARTS"]):
        process, http, grpc_port, seconds = _spawn_assistd(bench.tmp, bench.provider)
        try:
            starts.append(seconds)
            time.sleep(1.0)
            rss.append(rss_bytes(process.pid))
            assistant = _http_json(f"http://127.0.0.1:{http}/v1/assistants", {"model": MODEL})["id"]
            for into in (first, second):  # a cold process's first run, then a warm one
                thread = _http_json(
                    f"http://127.0.0.1:{http}/v1/threads", {"messages": [{"role": "user", "content": "[chunks:3]"}]}
                )["id"]
                result = bench.client.call(
                    op="streams",
                    kind="assistd_sse",
                    concurrency=1,
                    url=f"http://127.0.0.1:{http}/v1",
                    threads=[thread],
                    assistant_id=assistant,
                )
                into += result["ttft"]
        finally:
            _stop(process)
    relay_starts, relay_rss = [], []
    for _ in range(SIZES["STARTS"]):
        port = free_port()
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.perf.relay_sse", str(port), bench.provider.base_url],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            relay_starts.append(_wait_http(f"http://127.0.0.1:{port}/", process, start))
            time.sleep(1.0)
            relay_rss.append(rss_bytes(process.pid))
        finally:
            _stop(process)
    rows.append(
        f"| `assistd serve` (SQLite, no model list) | {p50(starts):.2f} s | {p50(rss) / 2**20:.0f} MB "
        f"| {ms(p50(first))} ms | {ms(p50(second))} ms |"
    )
    rows.append(f"| minimal aiohttp SSE relay | {p50(relay_starts):.2f} s | {p50(relay_rss) / 2**20:.0f} MB | | |")
    return f"""## Start-up: spawn to `/healthz`, idle RSS, a cold process's first run

{command("start")}

{SIZES["STARTS"]} fresh process(es) each (p50), timed from `Popen` to the first HTTP answer (polled every 10 ms); RSS
1 s later, idle. No model list is configured: models are `openai/<name>` with `OPENAI_API_BASE`. The first run on a
fresh process (a 3-chunk answer, SSE) against the second one on the same process.

| process | spawn -> answers | idle RSS | first run TTFT | second run TTFT |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def _http_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def section_idle(bench: Bench) -> str:
    """Idle watchers on a held run, each kind on a fresh process (nothing earlier left in its heap)."""
    n = SIZES["WATCHERS"]
    rows = []
    for kind in ("sse", "grpc"):
        process, http, grpc_port, _ = _spawn_assistd(bench.tmp, bench.provider)
        base_url = f"http://127.0.0.1:{http}/v1"
        try:
            assistant = _http_json(f"{base_url}/assistants", {"model": MODEL})["id"]
            # the provider waits 10 minutes before its first chunk: the run is held in_progress
            thread = _http_json(
                f"{base_url}/threads", {"messages": [{"role": "user", "content": "[chunks:2][slow:600]"}]}
            )["id"]
            run = _http_json(f"{base_url}/threads/{thread}/runs", {"assistant_id": assistant})["id"]
            for _ in range(200):
                if _http_json(f"{base_url}/threads/{thread}/runs/{run}")["status"] == "in_progress":
                    break
                time.sleep(0.05)
            time.sleep(1.0)
            base = rss_bytes(process.pid)
            opened = bench.client.call(
                op="watch_open",
                kind=kind,
                url=base_url,
                target=f"127.0.0.1:{grpc_port}",
                thread_id=thread,
                run_id=run,
                n=n,
                timeout=180,
            )
            time.sleep(1.0)
            held = rss_bytes(process.pid) - base
            _http_json(f"{base_url}/threads/{thread}/runs/{run}/cancel", {})
            closed = bench.client.call(op="watch_close", timeout=120)
            time.sleep(3.0)
            kept = rss_bytes(process.pid) - base
        finally:
            _stop(process)
        label = "SSE `GET .../runs/{id}/events`" if kind == "sse" else "gRPC `WatchRun`"
        share = f" ({kept / held:.0%})" if held > 0 else ""
        rows.append(
            f"| {label} | {opened['opened']:,} of {n:,} in {opened['seconds']:.1f} s "
            f"| {held / max(1, opened['opened']) / 1024:.1f} KB | {held / 2**20:.0f} MB "
            f"| {kept / 2**20:.0f} MB{share} "
            f"| {errors_text(opened['failed'])}; at the end: {errors_text(closed['outcomes'])} |"
        )
    return f"""## Idle streams: RSS per open watcher, and whether it is given back

{command("idle")}

A fresh `assistd serve` per row; a run held in progress (the provider waits before its first chunk). N watchers
open on it from the load client, in batches of 250, each waiting for its first replayed event. RSS of the assistd
process before, with all of them open (1 s after), and 3 s after the run was cancelled and every watcher had its
`done` and closed its connection. Heartbeats at the default 15 s.

| watchers | opened | RSS per open watcher | RSS held | RSS still held after they closed (share) | errors / outcomes |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def section_history(bench: Bench) -> str:
    long = SIZES["HISTORY"]
    runs = SIZES["HISTORY_RUNS"]
    text = "[reply:ok, noted.]"
    sizes = (10, long)
    threads = {size: bench.threads(1, text, history=size - 1)[0] for size in sizes}
    ttft: dict[int, list[float]] = {size: [] for size in sizes}
    total: dict[int, list[float]] = {size: [] for size in sizes}
    direct: dict[int, list[float]] = {size: [] for size in sizes}
    cpu: dict[int, float] = dict.fromkeys(sizes, 0.0)
    pid = [bench.server.process.pid]
    for size in sizes:  # untimed: a process's first run on a thread decodes all its messages once
        bench.streams("assistd_grpc", 1, text, threads=[threads[size]])
    for _ in range(runs):
        for size in sizes:
            messages = [
                {"role": "user", "content": f"filler message {i} about nothing in particular"} for i in range(size - 1)
            ]
            result = bench.client.call(
                op="streams",
                kind="chat",
                concurrency=1,
                url=bench.provider.base_url + "/chat/completions",
                messages=[*messages, {"role": "user", "content": text}],
            )
            direct[size] += result["ttft"]
            before = cpu_seconds(*pid)
            result = bench.streams("assistd_grpc", 1, text, threads=[threads[size]])
            cpu[size] += cpu_seconds(*pid) - before
            ttft[size] += result["ttft"]
            total[size] += result["durations"]
    rows = [
        f"| {size:,} messages | {ms(p50(direct[size]))} | {ms(p50(ttft[size]))} "
        f"| {ms(p50(ttft[size]) - p50(direct[size]))} | {ms(p50(total[size]))} | {cpu[size] / runs * 1000:.1f} |"
        for size in sizes
    ]
    ratio = (cpu[long] / runs) / (cpu[10] / runs)
    return f"""## The cost of a run vs the thread's history

{command("history")}

Two threads, of 10 and of {long:,} user messages (the last one asks for a 4-chunk answer); one untimed run on each
(the process's first run on a thread decodes all its messages, and a long prompt makes it read litellm's table of
context windows, once), then {runs} runs on each, alternating, over gRPC `CreateRunStream` (each run adds its answer to
the thread). The provider direct row sends the
same message list straight to the provider (its own cost of a longer prompt). CPU = assistd process CPU per run.

| thread | provider direct TTFT p50 ms | assistd TTFT p50 ms | added ms | assistd run p50 ms | assistd CPU ms per run |
|---|---|---|---|---|---|
{chr(10).join(rows)}

A run on the {long:,}-message thread costs {ratio:.1f}x the CPU of one on the 10-message thread.
"""


def section_ghz(bench: Bench) -> str:
    return bench_ghz.run(bench, command("ghz"))


def section_retrieval(bench: Bench) -> str:
    return f"{bench_retrieval.run(bench.server.client())}\n{command('retrieval')}\n"


def section_stores(bench: Bench) -> str:
    return f"{bench_stores.run(bench.provider)}\n{command('stores')}\n"


def section_fuzz(bench: Bench) -> str:
    """schemathesis against /openapi.json, longer than the test's run, on a server of its own (what
    it creates stays out of the other sections' store)."""
    (bench.tmp / "fuzz").mkdir()
    server = Server(bench.tmp / "fuzz", bench.provider).start()
    try:
        report = bench.tmp / "fuzz" / "report"
        result = openapi_fuzz.run(server.base_url, SIZES["FUZZ_EXAMPLES"], report, timeout=3600)
    finally:
        server.stop()
    line = openapi_fuzz.printable(
        openapi_fuzz.command("http://127.0.0.1:PORT/v1", SIZES["FUZZ_EXAMPLES"], Path("report"))
    )
    if not result.cases:
        raise RuntimeError(f"schemathesis ran no case (exit {result.returncode}): {result.output[-500:]}")
    found = (
        "no failure" if result.returncode == 0 else f"**{result.failures} unique failures** (exit {result.returncode})"
    )
    return f"""## OpenAPI fuzzing (schemathesis)

{result.cases:,} generated requests (valid and invalid) against every operation of `/openapi.json` on a live
`assistd serve` (SQLite), checks `{openapi_fuzz.CHECKS}`, deterministic generation: {found}, in
{result.seconds:.0f} s ({result.cases / max(result.seconds, 1):.0f} cases/s, one worker).

`{line}`; {command("fuzz")}
"""


SECTIONS = ["ttft", "throughput", "starve", "sweep", "history", "ghz", "start", "idle", "retrieval", "stores", "fuzz"]


def main(argv: list[str]) -> None:
    chosen = argv or SECTIONS
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    write = not argv
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.warm_up()
            for name in SECTIONS:
                if name not in chosen:
                    continue
                started = time.perf_counter()
                try:
                    if name == "sweep":
                        part = section_sweep(bench, ROOT if write else None)
                    else:
                        part = globals()[f"section_{name}"](bench)
                except Exception as exc:  # one broken section is a note in the report, not a lost run
                    part = f"## {name}\n\nNot measured: `{type(exc).__name__}: {exc}` ({command(name)}).\n"
                print(part, flush=True)
                print(f"[{name}: {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
                parts.append(part)
        finally:
            bench.stop()
    if write:
        (ROOT / "BENCHMARKS.md").write_text(header() + "\n".join(parts) + "\n" + NOT_MEASURED)


NOT_MEASURED = """## Not measured here, and why

- assistd on Cassandra in the streaming figures: every row runs `assistd serve` on SQLite; Cassandra appears in the
  store section only (its event-log rate and a sequential workload), since the shared test node is also the tests'.
- A relay floor for ghz's stream calls: the minimal gRPC relay has no `CreateThreadAndRunStream`/`WatchRun`, so those
  rows are absolute; their floor is the relay's row in the one-stream and sweep figures.
- The split deployment in the sweep and the idle-stream figures (TTFT and throughput only, to keep the run short).
- What the load client itself costs: it is one process for every row, so it weighs on all of them alike; at the top
  of the sweep it, the provider and the server share 2 cores, which is why the provider's own row degrades too.
"""


def header() -> str:
    mode = "quick (`BENCH_QUICK=1`)" if QUICK else "full"
    overrides = sorted(f"`{k}={v}`" for k, v in os.environ.items() if k.startswith("BENCH_") and k != "BENCH_QUICK")
    if overrides:
        mode += " sizes, except " + ", ".join(overrides)
    else:
        mode += " sizes"
    return f"""# Benchmarks

Written by `make bench` (`python -m tests.perf.bench`, {mode}), on {time.strftime("%Y-%m-%d")}: {os.cpu_count()} cores
(shared), Python {platform.python_version()}, {platform.machine()}, commit {_commit()}. The scripted OpenAI-compatible
provider, the minimal relays, `assistd serve` (SQLite) and the load client are separate processes on this machine, in
one run: compare the ratios, not the absolute numbers (expect +-20 %). Each section names the command that makes it.

"""


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main(sys.argv[1:])
