"""Timers that end runs left waiting for tool outputs once their `expires_at` has passed."""

import asyncio
from collections.abc import Callable, Coroutine

from assistd.v1 import run_pb2

from service import ids

Expire = Callable[[str, str, str], Coroutine[object, object, None]]  # (tenant, thread_id, run_id)


class ExpiryTimers:
    def __init__(self, expire: Expire, default_seconds: int):
        self._expire = expire
        self._default_seconds = default_seconds
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task] = set()

    def schedule(self, tenant: str, run: run_pb2.Run) -> None:
        """Calls expire(tenant, thread, run) at the run's expires_at (or after the default)."""
        delay = max(0.0, run.expires_at - ids.now()) if run.HasField("expires_at") else self._default_seconds
        thread_id, run_id = run.thread_id, run.id
        self._timers[run_id] = asyncio.get_running_loop().call_later(
            delay, lambda: self._fire(tenant, thread_id, run_id)
        )

    def cancel(self, run_id: str) -> None:
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, tenant: str, thread_id: str, run_id: str) -> None:
        self._timers.pop(run_id, None)
        task = asyncio.create_task(self._expire(tenant, thread_id, run_id), name=f"expire {run_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
