"""CPU of short streamed Responses against `assistd serve`, for checkouts side by side.

    python -m tests.perf.bench_responses_cpu [--n 200] [--rounds 3] [--input TEXT] CHECKOUT [CHECKOUT ...]

Each CHECKOUT is a source tree with its generated stubs in `gen/` (e.g. /work/main and a
worktree). Per round, for each checkout in turn (alternating, so drift in the machine's load
falls on all alike): a fresh `assistd serve` of that checkout (SQLite in a temporary folder),
the scripted provider, one warm-up response, then N streamed responses one after another through
the openai SDK; the server process's user+system CPU time (psutil) over the N, per response.
Also the same N as Assistants streams (runs.stream), the reference the Responses stream is
compared with. Prints one line per measurement and a summary (median over rounds). --input is
what each response is asked, a scripted-provider directive: "[chunks:200]" streams 200 deltas.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import openai
import psutil

from tests.scripted_llm import ScriptedLLM, free_port

MODEL = "openai/scripted"
INPUT = "[reply:Paris is the capital of France, and it is a city of museums.]"  # ~20 text deltas


def _serve(checkout: str, tmp: str, provider: ScriptedLLM) -> tuple[subprocess.Popen, str]:
    http = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{checkout}/gen:{checkout}",
        "ASSISTD_HTTP_PORT": str(http),
        "ASSISTD_GRPC_PORT": str(free_port()),
        "ASSISTD_METRICS_PORT": "0",
        "ASSISTD_STORE": f"sqlite:///{tmp}/bench-{http}.db",
        "ASSISTD_LOG_LEVEL": "WARNING",
        "OPENAI_API_BASE": provider.base_url,
        "OPENAI_API_KEY": "k",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    for line in process.stdout:  # type: ignore[union-attr]
        if b"assistd ready" in line:
            return process, f"http://127.0.0.1:{http}/v1"
    raise RuntimeError(f"{checkout}: assistd did not start")


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _responses(client: openai.OpenAI, n: int) -> None:
    for _ in range(n):
        with client.responses.stream(model=MODEL, input=INPUT) as stream:
            for _event in stream:
                pass


def _assistants(client: openai.OpenAI, assistant_id: str, n: int) -> None:
    for _ in range(n):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": INPUT}])
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
            for _event in stream:
                pass


def measure(checkout: str, n: int, provider: ScriptedLLM) -> dict[str, float]:
    """ms of server CPU per streamed response, and per Assistants stream, on a fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        process, base_url = _serve(checkout, tmp, provider)
        try:
            client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
            assistant_id = client.beta.assistants.create(model=MODEL).id
            _responses(client, 3)  # warm-up: imports, first connections, caches
            _assistants(client, assistant_id, 3)
            out = {}
            for name, work in (
                ("responses", lambda: _responses(client, n)),
                ("assistants", lambda: _assistants(client, assistant_id, n)),
            ):
                before, start = _cpu(process.pid), time.monotonic()
                work()
                out[name] = (_cpu(process.pid) - before) / n * 1000
                out[name + "_wall"] = (time.monotonic() - start) / n * 1000
            return out
        finally:
            process.terminate()
            process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--input", default=INPUT)
    args = parser.parse_args()
    globals()["INPUT"] = args.input
    provider = ScriptedLLM().start()
    results: dict[str, list[dict[str, float]]] = {c: [] for c in args.checkouts}
    try:
        for round_ in range(args.rounds):
            for checkout in args.checkouts:
                got = measure(checkout, args.n, provider)
                results[checkout].append(got)
                print(
                    f"round {round_ + 1} {checkout}: responses {got['responses']:.2f} ms CPU/stream, "
                    f"assistants {got['assistants']:.2f} ms CPU/stream",
                    flush=True,
                )
    finally:
        provider.stop()
    for checkout, rows in results.items():
        responses = statistics.median(r["responses"] for r in rows)
        assistants = statistics.median(r["assistants"] for r in rows)
        print(
            f"{checkout}: median responses {responses:.2f} ms, assistants {assistants:.2f} ms CPU per stream, "
            f"ratio {responses / assistants:.2f}"
        )


if __name__ == "__main__":
    main()
