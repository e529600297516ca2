"""A minimal aiohttp SSE relay: the provider's stream passed through, one event per write.

It does nothing a server for streamed runs could skip (accept a request, call the provider on a
shared pool, read its SSE lines, write each to the client), so its figures bound what any Python
server on this machine can do with the same stream. `python -m tests.perf.relay_sse PORT UPSTREAM`
"""

import asyncio
import sys

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    async with request.app[SESSION].post(
        request.app[UPSTREAM] + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
    ) as upstream:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        async for line in upstream.content:
            if line.startswith(b"data:"):  # one SSE event per provider chunk, written as it arrives
                await response.write(line.rstrip(b"\n") + b"\n\n")
        return response


async def serve(port: int, upstream: str) -> None:
    app = web.Application()
    # limit=0: the bench opens up to thousands of concurrent streams, the pool must not queue them
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    app[UPSTREAM] = upstream
    app.router.add_post("/v1/chat/completions", relay)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("relay ready", flush=True)
    await asyncio.Event().wait()  # until the bench terminates the process


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
