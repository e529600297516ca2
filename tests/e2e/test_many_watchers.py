"""1,000 SSE watchers held open on one run for 60 s, in the split deployment (edge -> gRPC ->
service): every one of them sees the whole run to `done`, none is cut (issue 13 saw 480 of 1,000
end with CANCELLED after ~31 s, when the service's loop was saturated)."""

import asyncio
import time
import uuid

import aiohttp

from tests.conftest import MODEL, Server

WATCHERS = 1000
HOLD_SECONDS = 60
CHUNKS = 5


async def _watch(session: aiohttp.ClientSession, url: str, opened: asyncio.Semaphore) -> tuple[int, list[str]]:
    """Follows the run's events from the start; returns (text deltas, event names)."""
    names: list[str] = []
    deltas = 0
    async with session.get(url, headers={"Authorization": "Bearer test-key"}) as response:
        opened.release()
        if response.status != 200:
            return deltas, [f"http {response.status}"]
        async for line in response.content:
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
                names.append(name)
                deltas += name == "thread.message.delta"
                if name == "done":
                    break
    return deltas, names


async def _hold_watchers(url: str, release, hold: float) -> list[tuple[int, list[str]]]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=hold + 120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        opened = asyncio.Semaphore(0)
        watchers = [asyncio.create_task(_watch(session, url, opened)) for _ in range(WATCHERS)]
        for _ in range(WATCHERS):  # every watcher has its response headers
            await opened.acquire()
        await asyncio.sleep(hold)
        assert not any(w.done() for w in watchers), "a watcher ended while the run was held"
        release()
        return await asyncio.gather(*watchers, return_exceptions=False)


def test_a_thousand_watchers_held_for_a_minute_all_see_the_run_end(provider, tmp_path):
    service = Server(tmp_path, provider).start("service")
    edge = Server(tmp_path, provider, {"ASSISTD_GRPC_TARGET": service.grpc_target})
    try:
        edge.start("edge")
        client = edge.client()
        gate = f"watchers-{uuid.uuid4().hex[:8]}"
        assistant = client.beta.assistants.create(model=MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"[chunks:{CHUNKS}][gate:{gate}:2]"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        deadline = time.monotonic() + 30
        while not provider.is_held(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert provider.is_held(gate)
        url = f"{edge.base_url}/threads/{thread.id}/runs/{run.id}/events"
        results = asyncio.run(_hold_watchers(url, lambda: provider.release(gate), HOLD_SECONDS))
    finally:
        edge.stop()
        service.stop()
    assert len(results) == WATCHERS
    ends = [names[-2:] for _, names in results]
    assert all(end == ["thread.run.completed", "done"] for end in ends), {tuple(e) for e in ends}
    assert all(deltas == CHUNKS for deltas, _ in results)
    assert not any("error" in names for _, names in results)
