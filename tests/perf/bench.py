"""`make bench`: what a streamed run costs through assistd, next to the provider called directly.

Everything runs on this machine in one go (provider, assistd, client as separate processes),
so the figures are ratios taken under the same noise. Writes BENCHMARKS.md.
"""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import grpc
import openai
from assistd.v1 import message_pb2, run_pb2, run_service_pb2, run_service_pb2_grpc, thread_pb2, thread_pb2_grpc

from tests.conftest import MODEL, ROOT, Server
from tests.perf import bench_retrieval, bench_stores
from tests.perf.stats import percentile
from tests.scripted_llm import free_port

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks Assistants deprecated
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
LONG_CHUNKS = 500


class Provider:
    """The scripted provider in its own process, so it does not share the client's GIL."""

    def __init__(self):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.scripted_llm", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE
        )
        assert b"ready" in self.process.stdout.readline()

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def ms(values):
    return f"{statistics.median(values) * 1000:.1f} / {percentile(values, 99) * 1000:.1f}"


def direct_ttft(provider, prompt):
    client = openai.OpenAI(base_url=provider.base_url, api_key="x", max_retries=0)
    samples, totals = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        stream = client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": prompt}], stream=True
        )
        first = None
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - start
        samples.append(first)
        totals.append(time.perf_counter() - start)
    return samples, totals


def sse_ttft(client, assistant_id, prompt):
    samples, totals = [], []
    for _ in range(RUNS):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": prompt}])
        start = time.perf_counter()
        first = None
        for event in client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, stream=True):
            if first is None and event.event == "thread.message.delta":
                first = time.perf_counter() - start
        samples.append(first)
        totals.append(time.perf_counter() - start)
    return samples, totals


def grpc_ttft(target, assistant_id, prompt):
    samples, totals = [], []
    with grpc.insecure_channel(target) as channel:
        threads = thread_pb2_grpc.ThreadServiceStub(channel)
        runs = run_service_pb2_grpc.RunServiceStub(channel)
        for _ in range(RUNS):
            message = message_pb2.NewMessage(role=message_pb2.MESSAGE_ROLE_USER)
            message.content.add().text.value = prompt
            thread_id = threads.CreateThread(thread_pb2.CreateThreadRequest(messages=[message])).thread.id
            start = time.perf_counter()
            first = None
            request = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
            for event in runs.CreateRunStream(request):
                if first is None and event.event == run_pb2.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA:
                    first = time.perf_counter() - start
            samples.append(first)
            totals.append(time.perf_counter() - start)
    return samples, totals


def main():
    provider = Provider()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), provider).start()
        try:
            client = server.client()
            assistant = client.beta.assistants.create(model=MODEL)
            short, long = "[reply:Hello there, how are you today?]", f"[chunks:{LONG_CHUNKS}]"
            sse_ttft(client, assistant.id, short)  # warm up connections and code paths
            results = {
                "direct": direct_ttft(provider, short),
                "grpc": grpc_ttft(server.grpc_target, assistant.id, short),
                "sse": sse_ttft(client, assistant.id, short),
            }
            long_results = {
                "direct": direct_ttft(provider, long)[1],
                "grpc": grpc_ttft(server.grpc_target, assistant.id, long)[1],
                "sse": sse_ttft(client, assistant.id, long)[1],
            }
            retrieval = bench_retrieval.run(client)
        finally:
            server.stop()
        try:
            stores = bench_stores.run(provider)
        finally:
            provider.stop()
    write_report(results, long_results, retrieval + "\n" + stores)


def write_report(results, long_results, retrieval: str):
    base = statistics.median(results["direct"][0])
    base_long = statistics.median(long_results["direct"])
    labels = {
        "direct": "provider direct (openai SDK, chat.completions stream)",
        "grpc": "assistd gRPC `CreateRunStream` (generated stub)",
        "sse": "assistd HTTP/SSE `runs.create(stream=True)` (openai SDK)",
    }
    rows = [
        f"| {labels[k]} | {ms(results[k][0])} | {statistics.median(results[k][0]) / base:.1f}x "
        f"| {ms(long_results[k])} | {LONG_CHUNKS / statistics.median(long_results[k]):,.0f} "
        f"| {statistics.median(long_results[k]) / base_long:.2f}x |"
        for k in ("direct", "grpc", "sse")
    ]
    report = f"""# Benchmarks

Written by `make bench` (`python -m tests.perf.bench`); {time.strftime("%Y-%m-%d")}, {os.cpu_count()} cores,
Python {platform.python_version()}, {platform.machine()}. The scripted OpenAI-compatible provider, `assistd serve`
(SQLite) and the client run as three processes on this machine, in one run, so compare the ratios rather than
the absolute numbers (2 shared cores; expect +-20 %).

## A streamed run, through assistd vs the provider direct

{RUNS} sequential runs per row. Through assistd a run means: create the run (persisted), build the prompt from the
thread, call the provider through litellm, persist every event in the run's log (group commit) and stream it.
TTFT = request sent -> first text delta received. The long answer is {LONG_CHUNKS} chunks.

| path | TTFT p50 / p99 ms | TTFT vs direct | {LONG_CHUNKS}-chunk run p50 / p99 ms | chunks/s (p50) | run time vs direct |
|---|---|---|---|---|---|
{chr(10).join(rows)}

What it says: the fixed cost of a run (store writes, litellm's request path) dominates TTFT; per-chunk cost is
litellm's stream parsing plus one event-log row, SSE encoding and one HTTP write per token (deltas are not coalesced yet).

{retrieval}"""
    (ROOT / "BENCHMARKS.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
