"""The benchmark's client: its own process, told what to do with one JSON command per stdin line.

Every row of a figure goes through this same client (raw aiohttp SSE reader, grpc.aio), so what the
client costs is the same for all of them and the ratios compare the servers. Each command answers
with one JSON line on stdout. Commands (`op`):
  streams     C concurrent streams of one kind, started at once and bounded by `timeout` seconds:
              per-stream TTFT and duration, events and text chunks received, errors by kind
  threads     create N threads over gRPC (each with `history` filler messages before `text`)
  watch_open  open N watchers (SSE `GET .../events` or gRPC `WatchRun`) on one run, kept open
  watch_close wait for the watchers to end (the run was ended meanwhile), then close their pool
`python -m tests.perf.loadgen` (the bench starts it).
"""

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp
import grpc
import uvloop
from assistd.v1 import message_pb2, run_pb2, run_service_pb2, run_service_pb2_grpc, thread_pb2, thread_pb2_grpc

E = run_pb2
_RUN_FAILED = {E.RUN_EVENT_TYPE_THREAD_RUN_FAILED}
_CONTENT = b'"content": "'


def _is_text_chunk(payload: bytes) -> bool:
    """A provider chunk with text in it (the scripted provider's first chunk has only the role).
    A byte search, not json.loads, so reading costs the client the same on every row."""
    at = payload.find(_CONTENT)
    return at >= 0 and payload[at + len(_CONTENT) : at + len(_CONTENT) + 1] != b'"'


def _provider_chunks(spaces: int) -> int:
    """How many provider chunks one assistd text delta carries: the bench's answers are words
    "w0 w1 ..." (one per chunk, each ending in a space), and under backlog assistd merges
    consecutive deltas (service/engine/coalesce.py), so deltas are not chunks. At least one."""
    return max(1, spaces)


class Stream:
    """What one stream saw: seconds to its first text chunk and to its end, events, text chunks."""

    __slots__ = ("chunks", "duration", "error", "events", "start", "ttft")

    def __init__(self):
        self.start = time.perf_counter()
        self.ttft: float | None = None
        self.duration: float | None = None
        self.events = 0
        self.chunks = 0
        self.error: str | None = None

    def chunk(self, n: int = 1) -> None:
        self.chunks += n
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.start

    def end(self) -> None:
        self.duration = time.perf_counter() - self.start


class Client:
    def __init__(self):
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._watchers: list[asyncio.Task] = []
        self._watch_pool: aiohttp.ClientSession | grpc.aio.Channel | None = None

    def session(self, key: str = "") -> aiohttp.ClientSession:
        if key not in self._sessions:
            # limit=0: thousands of concurrent streams, each on its own HTTP/1.1 connection
            self._sessions[key] = _new_session()
        return self._sessions[key]

    def channel(self, target: str) -> grpc.aio.Channel:
        if target not in self._channels:
            self._channels[target] = grpc.aio.insecure_channel(target)
        return self._channels[target]

    # -- one stream of each kind ---------------------------------------------------------------

    async def chat(self, s: Stream, url: str, body: bytes) -> None:
        """The provider (or the SSE relay) with a raw SSE reader."""
        async with self.session().post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            if response.status != 200:
                s.error = f"http {response.status}"
                return
            async for line in response.content:
                if line.startswith(b"data:"):
                    s.events += 1
                    if _is_text_chunk(line):
                        s.chunk()

    async def grpc_relay(self, s: Stream, target: str, body: bytes) -> None:
        call = self.channel(target).unary_stream("/relay.Relay/Stream")(body)
        async for payload in call:
            s.events += 1
            if _is_text_chunk(payload):
                s.chunk()

    async def assistd_sse(self, s: Stream, url: str, thread_id: str, assistant_id: str) -> None:
        body = json.dumps({"assistant_id": assistant_id, "stream": True}).encode()
        async with self.session().post(
            f"{url}/threads/{thread_id}/runs", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            if response.status != 200:
                s.error = f"http {response.status}"
                return
            delta = False  # the last event line named a message delta: its data line comes
            async for line in response.content:
                if delta and line.startswith(b"data:"):
                    delta = False
                    s.chunk(_provider_chunks(line.count(b" ") - 1))  # the one after "data:" is not text
                if not line.startswith(b"event:"):
                    continue
                s.events += 1
                name = line[6:].strip()
                if name == b"thread.message.delta":
                    delta = True
                elif name in (b"thread.run.failed", b"error"):
                    s.error = "run failed"
                elif name == b"done":
                    return

    async def assistd_grpc(self, s: Stream, target: str, thread_id: str, assistant_id: str) -> None:
        runs = run_service_pb2_grpc.RunServiceStub(self.channel(target))
        request = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        async for event in runs.CreateRunStream(request):
            s.events += 1
            kind = event.event
            if kind == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA:
                parts = event.message_delta.delta.content
                s.chunk(_provider_chunks(parts[0].text.value.count(" ") if parts else 0))
            elif kind in _RUN_FAILED:
                s.error = "run failed"

    # -- commands ----------------------------------------------------------------------------

    async def streams(self, cmd: dict) -> dict:
        kind, n = cmd["kind"], cmd["concurrency"]
        body = b""
        if kind in ("chat", "grpc_relay"):
            body = json.dumps(
                {"model": "scripted", "messages": cmd["messages"], "stream": True, "stream_options": {}}
            ).encode()
        threads = cmd.get("threads") or []
        results = [Stream() for _ in range(n)]

        async def one(i: int) -> None:
            s = results[i]
            s.start = time.perf_counter()
            try:
                if kind == "chat":
                    await self.chat(s, cmd["url"], body)
                elif kind == "grpc_relay":
                    await self.grpc_relay(s, cmd["target"], body)
                elif kind == "assistd_sse":
                    await self.assistd_sse(s, cmd["url"], threads[i], cmd["assistant_id"])
                else:
                    await self.assistd_grpc(s, cmd["target"], threads[i], cmd["assistant_id"])
            except grpc.aio.AioRpcError as exc:
                s.error = f"grpc {exc.code().name}"
            except Exception as exc:  # any failure is a figure in the report, not a crash of the bench
                s.error = type(exc).__name__
            s.end()

        start = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=cmd.get("timeout", 60))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - start
        for task, s in zip(tasks, results, strict=True):
            if task in pending:
                s.error = "timeout"
        errors = Counter(s.error for s in results if s.error)
        return {
            # every first token counts, also of a stream cut later; those that never had one are
            # counted apart (a percentile over the rest would hide them)
            "ttft": [s.ttft for s in results if s.ttft is not None],
            "no_first_token": sum(s.ttft is None for s in results),
            "durations": [s.duration for s in results if not s.error],
            "events": sum(s.events for s in results),
            "chunks": sum(s.chunks for s in results),
            "errors": dict(errors),
            "wall": wall,
        }

    async def threads(self, cmd: dict) -> dict:
        stub = thread_pb2_grpc.ThreadServiceStub(self.channel(cmd["target"]))
        texts = [f"filler message {i} about nothing in particular" for i in range(cmd.get("history", 0))]
        request = thread_pb2.CreateThreadRequest()
        for text in [*texts, cmd["text"]]:
            message = request.messages.add(role=message_pb2.MESSAGE_ROLE_USER)
            message.content.add().text.value = text
        gate = asyncio.Semaphore(32)  # set-up, not measured: bounded so it does not flood the server

        async def create() -> str:
            async with gate:
                return (await stub.CreateThread(request)).thread.id

        return {"threads": await asyncio.gather(*(create() for _ in range(cmd["n"])))}

    async def watch_open(self, cmd: dict) -> dict:
        """Opens N watchers on a run in batches; answers once each has its first event (or failed)."""
        n, batch = cmd["n"], cmd.get("batch", 250)
        first = [asyncio.get_running_loop().create_future() for _ in range(n)]
        if cmd["kind"] == "sse":
            pool: aiohttp.ClientSession | grpc.aio.Channel = _new_session()
            url = f"{cmd['url']}/threads/{cmd['thread_id']}/runs/{cmd['run_id']}/events"
        else:
            pool = grpc.aio.insecure_channel(cmd["target"])
            stub = run_service_pb2_grpc.RunServiceStub(pool)
            request = run_service_pb2.WatchRunRequest(run_id=cmd["run_id"])
        self._watch_pool = pool

        async def watch(i: int) -> str:
            try:
                if isinstance(pool, aiohttp.ClientSession):
                    async with pool.get(url) as response:
                        async for line in response.content:
                            if line.startswith(b"event:"):
                                if not first[i].done():
                                    first[i].set_result(None)
                                if line.startswith(b"event: done"):
                                    return "done"
                else:
                    async for event in stub.WatchRun(request):
                        if not first[i].done():
                            first[i].set_result(None)
                        if event.event == E.RUN_EVENT_TYPE_DONE:
                            return "done"
                return "ended without done"
            except grpc.aio.AioRpcError as exc:
                return f"grpc {exc.code().name}"
            except Exception as exc:  # counted, not raised
                return type(exc).__name__
            finally:
                if not first[i].done():
                    first[i].set_result(None)

        start = time.perf_counter()
        deadline = start + cmd.get("timeout", 120)  # for the whole opening: a stalled server ends it
        for at in range(0, n, batch):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            tasks = [asyncio.create_task(watch(i)) for i in range(at, min(n, at + batch))]
            self._watchers += tasks
            await asyncio.wait(first[at : at + batch], timeout=left)
        early = Counter(t.result() for t in self._watchers if t.done())
        waiting = sum(not f.done() for f in first[: len(self._watchers)])
        if waiting:
            early["no first event by the deadline"] = waiting
        if len(self._watchers) < n:
            early["not opened: deadline"] = n - len(self._watchers)
        return {"opened": n - sum(early.values()), "failed": dict(early), "seconds": time.perf_counter() - start}

    async def watch_close(self, cmd: dict) -> dict:
        done, pending = await asyncio.wait(self._watchers, timeout=cmd.get("timeout", 60))
        for task in pending:
            task.cancel()
        outcomes = Counter(t.result() for t in done)
        if pending:
            outcomes["still open at timeout"] = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        self._watchers = []
        if self._watch_pool is not None:  # closes the client's sockets, so the server can let go too
            await self._watch_pool.close()
            self._watch_pool = None
        return {"outcomes": dict(outcomes)}


def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None),
        read_bufsize=1 << 20,
    )


async def main() -> None:
    client = Client()
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = json.loads(line)
        try:
            answer = await getattr(client, cmd["op"])(cmd)
        except Exception as exc:  # the bench reports it and goes on; this client stays up
            answer = {"command_failed": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    uvloop.run(main())
