"""A scripted OpenAI-compatible chat server for tests: what it answers is written in the prompt.

Directives in the last user message:
  [reply:TEXT]     answer exactly TEXT (streamed in 3-character chunks)
  [chunks:N]       answer with N words "w0 w1 ..."
  [slow:SECONDS]   wait this long before each chunk
  [error:STATUS]   fail with this HTTP status and an OpenAI error body
  [call:NAME:ARGS] call function NAME with JSON ARGS; several of them are parallel calls
  [rounds:N]       make the calls in N successive turns (default 1)
  [say:TEXT]       say TEXT before making the calls
  [gate:NAME:N]    after N chunks, wait until the test calls `release(NAME)` (`is_held(NAME)` meanwhile)
  [embed-slow:S]   (in a text to embed) answer the embeddings request after S seconds
  [fault:KIND]     a broken provider: `hang` never answers; `drop:N` cuts the connection after N
                   chunks; `malformed:N` sends a chunk that is not JSON after N chunks
  [flaky:K:STATUS] the first K requests with this prompt fail with STATUS (with `retry-after: 0`),
                   later ones answer (`requests_with` counts the attempts)
  [python]CODE[/python]  call the `python` tool (code_interpreter) with CODE; several blocks are
                   successive turns, one block each (the first with the [call:...] calls, if any)
Otherwise it answers "You said: <message>". After tool results it answers "Results: <outputs>".
`tool_choice` is honoured like a real model would: "none" never calls, "required" or a named
function always calls. Every request is recorded in `requests`, and the API key it came with (its
`Authorization: Bearer` value) in `keys`; the prompts of streams whose client hung up before the
end are recorded in `cut_off`.
"""

import asyncio
import json
import re
import socket
import threading
import time
import zlib

from aiohttp import web

_DIRECTIVE = re.compile(r"\[(reply|chunks|slow|error|rounds|say|gate|fault|flaky):([^\]]*)\]")
_CALL = re.compile(r"\[call:([A-Za-z0-9_-]+):(\{.*?\})\]")
_PYTHON = re.compile(r"\[python\](.*?)\[/python\]", re.DOTALL)


# Words that mean the same to the scripted embedder, so vector search finds what keywords miss.
SYNONYMS = {"automobile": "car", "vehicle": "car", "cars": "car", "physician": "doctor", "medic": "doctor"}
DIMENSIONS = 64


def embed(text: str) -> list[float]:
    """A deterministic bag-of-words embedding: one hashed dimension per (synonym-folded) word."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        word = SYNONYMS.get(word, word)
        vector[zlib.crc32(word.encode()) % DIMENSIONS] += 1.0
    return vector


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return content or ""
    return ""


class ScriptedLLM:
    def __init__(self):
        self.port = free_port()
        self.requests: list[dict] = []
        self.keys: list[tuple[str, str]] = []  # (last user text, bearer key) of each chat request
        self.cut_off: list[str] = []  # the last user text of each stream whose client went away before the end
        self._held: set[str] = set()  # gates a stream is waiting at now
        self._released: set[str] = set()
        self._attempts: dict[str, int] = {}  # requests seen per prompt text, for [flaky:...]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ScriptedLLM":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def requests_with(self, marker: str) -> list[dict]:
        """The recorded chat requests whose last user message contains marker."""
        return [r for r in list(self.requests) if "messages" in r and marker in _last_user_text(r["messages"])]

    def keys_with(self, marker: str) -> list[str]:
        """The API keys the chat requests whose last user message contains marker came with."""
        return [key for text, key in list(self.keys) if marker in text]

    def was_cut_off(self, marker: str) -> bool:
        """Whether a stream whose last user message contains marker lost its client before the end."""
        return any(marker in text for text in list(self.cut_off))

    def is_held(self, gate: str) -> bool:
        """Whether a stream is waiting at this gate now."""
        return gate in self._held

    def release(self, gate: str) -> None:
        """Lets the streams waiting at this gate (or arriving at it later) go on."""
        self._released.add(gate)

    async def _wait_at(self, gate: str) -> None:
        self._held.add(gate)
        try:
            while gate not in self._released:  # noqa: ASYNC110 - released from the test's thread: polled
                await asyncio.sleep(0.02)
        finally:
            self._held.discard(gate)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        runner = web.AppRunner(app, handler_cancellation=True)
        self._loop.run_until_complete(runner.setup())
        # a deep accept queue: the bench opens up to 2,000 streams at once
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, backlog=4096).start())
        self._ready.set()
        self._loop.run_forever()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        text = _last_user_text(body["messages"])
        self.keys.append((text, request.headers.get("Authorization", "").removeprefix("Bearer ")))
        directives = dict(_DIRECTIVE.findall(text))
        self._attempts[text] = self._attempts.get(text, 0) + 1
        if "flaky" in directives:
            failures, _, flaky_status = directives["flaky"].partition(":")
            if self._attempts[text] <= int(failures):
                directives["error"] = flaky_status
        fault, _, fault_after = directives.get("fault", "").partition(":")
        if fault == "hang":
            await asyncio.sleep(3600)
        if "error" in directives:
            status = int(directives["error"])
            return web.json_response(
                {
                    "error": {
                        "message": f"scripted failure {status}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=status,
                headers={"retry-after": "0"},
            )
        if not body.get("tools") and '"tool_calls"' in self._system(body):
            # a model without native tools, prompted with the JSON protocol (prompt-based fallback)
            results = [
                m["content"].split(": ", 1)[1]
                for m in self._trailing_user(body)
                if m["content"].startswith("Result of ")
            ]
            if results:
                answer = "Results: " + "; ".join(results)
            elif wanted := _CALL.findall(text):
                answer = json.dumps({"tool_calls": [{"name": n, "arguments": json.loads(a)} for n, a in wanted]})
            elif blocks := _PYTHON.findall(text):
                answer = json.dumps({"tool_calls": [{"name": "python", "arguments": {"code": blocks[0]}}]})
            else:
                answer = "plain answer"
            directives["reply"] = answer
        calls = self._calls(body, text, directives)
        if calls:
            return await self._stream_calls(
                request, body, calls, float(directives.get("slow", 0)), directives.get("say", "")
            )
        tool_results = self._tool_results(body["messages"])
        if tool_results is not None:
            answer = "Results: " + "; ".join(tool_results)
            chunks = [answer[i : i + 3] for i in range(0, len(answer), 3)]
        elif "reply" in directives:
            answer = directives["reply"]
            chunks = [answer[i : i + 3] for i in range(0, len(answer), 3)]
        elif "chunks" in directives:
            chunks = [f"w{i} " for i in range(int(directives["chunks"]))]
        else:
            answer = "You said: " + _DIRECTIVE.sub("", text).strip()
            chunks = [answer[i : i + 3] for i in range(0, len(answer), 3)]
        finish = "stop"
        if body.get("max_tokens") is not None and len(chunks) > body["max_tokens"]:
            chunks, finish = chunks[: body["max_tokens"]], "length"
        delay = float(directives.get("slow", 0))
        gate, _, gate_after = directives.get("gate", "").partition(":")
        prompt_tokens = sum(len(json.dumps(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(chunks),
            "total_tokens": prompt_tokens + len(chunks),
        }
        if not body.get("stream"):
            return web.json_response(self._completion(body, "".join(chunks), finish, usage))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await self._send(response, body, {"role": "assistant", "content": ""}, None)
            for index, chunk in enumerate(chunks):
                if gate and index == int(gate_after):
                    await self._wait_at(gate)
                if fault and index == int(fault_after):
                    if fault == "malformed":
                        await response.write(b"data: {this is not json\n\n")
                    if request.transport is not None:
                        request.transport.abort()  # drop: no [DONE], no clean close
                    return response
                if delay:
                    await asyncio.sleep(delay)
                await self._send(response, body, {"content": chunk}, None)
            await self._send(response, body, {}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                await response.write(
                    f"data: {json.dumps({**self._chunk_base(body), 'choices': [], 'usage': usage})}\n\n".encode()
                )
            await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.cut_off.append(text)
            raise
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        for delay in re.findall(r"\[embed-slow:([0-9.]+)\]", " ".join(texts)):
            await asyncio.sleep(float(delay))
        data = [{"object": "embedding", "index": i, "embedding": embed(text)} for i, text in enumerate(texts)]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})

    @staticmethod
    def _system(body: dict) -> str:
        return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")

    @staticmethod
    def _trailing_user(body: dict) -> list[dict]:
        """The user messages after the last assistant message."""
        trailing = []
        for message in reversed(body["messages"]):
            if message["role"] != "user":
                break
            trailing.insert(0, message)
        return trailing

    @staticmethod
    def _tool_results(messages: list[dict]) -> list[str] | None:
        """Outputs of the tool messages after the last user message, or None if there are none."""
        results = []
        for message in reversed(messages):
            if message.get("role") == "user":
                break
            if message.get("role") == "tool":
                results.append(message["content"])
        return list(reversed(results)) if results else None

    def _calls(self, body: dict, text: str, directives: dict) -> list[tuple[str, str]]:
        """The (name, arguments) calls to make now, as a model honouring tool_choice would."""
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        choice = body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return []
        wanted = [(name, args) for name, args in _CALL.findall(text) if name in tools]
        turns_done = 0
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                break
            turns_done += bool(message.get("tool_calls"))
        blocks = _PYTHON.findall(text)
        if blocks and "python" in tools:  # the first block comes with any [call:...] of the first turn
            code = [("python", json.dumps({"code": blocks[turns_done]}))] if turns_done < len(blocks) else []
            return code + (wanted if turns_done == 0 else [])
        if wanted and turns_done >= int(directives.get("rounds", 1)):
            wanted = []
        if isinstance(choice, dict):
            named = choice["function"]["name"]
            return [c for c in wanted if c[0] == named] or ([(named, "{}")] if turns_done == 0 else [])
        if choice == "required" and not wanted and turns_done == 0:
            return [(tools[0], "{}")]
        if body.get("parallel_tool_calls") is False:
            return wanted[:1]
        return wanted

    async def _stream_calls(self, request, body, calls, delay, say="") -> web.StreamResponse:
        """Streams the calls' arguments in 5-character pieces; a piece counts as a token for max_tokens."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await self._send(response, body, {"role": "assistant", "content": say or None}, None)
        budget = body.get("max_tokens")
        finish = "tool_calls"
        for index, (name, arguments) in enumerate(calls):
            first = {
                "index": index,
                "id": f"call_provider_{index}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            await self._send(response, body, {"tool_calls": [first]}, None)
            for i in range(0, len(arguments), 5):
                if budget is not None:
                    if budget == 0:
                        finish = "length"
                        break
                    budget -= 1
                if delay:
                    await asyncio.sleep(delay)
                piece = {"index": index, "function": {"arguments": arguments[i : i + 5]}}
                await self._send(response, body, {"tool_calls": [piece]}, None)
        await self._send(response, body, {}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": 5 * len(calls), "total_tokens": 10 + 5 * len(calls)}
            await response.write(
                f"data: {json.dumps({**self._chunk_base(body), 'choices': [], 'usage': usage})}\n\n".encode()
            )
        await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    def _chunk_base(body: dict) -> dict:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }

    async def _send(self, response, body, delta, finish) -> None:
        chunk = {**self._chunk_base(body), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    def _completion(self, body, text, finish, usage) -> dict:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage,
        }


if __name__ == "__main__":  # run standalone: python -m tests.scripted_llm PORT
    import sys

    llm = ScriptedLLM()
    if len(sys.argv) > 1:
        llm.port = int(sys.argv[1])
    llm.start()
    print("scripted llm ready", flush=True)
    threading.Event().wait()
