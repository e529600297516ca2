"""The benchmark's processes: the scripted provider, the minimal relays, the load client, and
what the kernel says each one costs (CPU seconds, RSS)."""

import json
import subprocess
import sys
import time

import psutil

from tests.conftest import ROOT
from tests.scripted_llm import free_port


class Child:
    """A child process that prints a line containing `ready` once it serves."""

    def __init__(self, args: list[str], ready: bytes = b"ready"):
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        line = self.process.stdout.readline()
        if ready not in line:
            self.stop()
            raise RuntimeError(f"{args} did not start: {line!r}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Provider(Child):
    """The scripted OpenAI-compatible provider, in its own process so it shares no GIL."""

    def __init__(self):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        super().__init__(["-m", "tests.scripted_llm", str(self.port)])


class Relay(Child):
    """A minimal relay of the provider's stream: `sse` (aiohttp) or `grpc` (grpc.aio)."""

    def __init__(self, kind: str, provider: Provider):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.target = f"127.0.0.1:{self.port}"
        super().__init__(["-m", f"tests.perf.relay_{kind}", str(self.port), provider.base_url])


class LoadGen(Child):
    """The load client (tests/perf/loadgen.py), one JSON command and answer per line."""

    def __init__(self):
        super().__init__(["-m", "tests.perf.loadgen"])

    def call(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client died on {command['op']}")
        answer = json.loads(line)
        if "command_failed" in answer:
            raise RuntimeError(f"the load client's {command['op']} failed: {answer['command_failed']}")
        return answer


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    return sum(t.user + t.system for t in (psutil.Process(pid).cpu_times() for pid in pids))


def rss_bytes(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def wait_idle(pids: list[int], below: float = 0.05, settle: float = 0.5, limit: float = 60.0) -> float:
    """Waits until the processes use less than `below` of a core over `settle` seconds (runs left
    over from a timed-out level still work in the background); returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(*pids)
        time.sleep(settle)
        if (cpu_seconds(*pids) - before) / settle < below:
            break
    return time.monotonic() - start
