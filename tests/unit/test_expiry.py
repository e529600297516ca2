"""Expiry timers: they fire at a run's expires_at, once, and a cancelled one never does."""

import asyncio

from assistd.v1 import run_pb2

from service import ids
from service.engine.expiry import ExpiryTimers


async def test_a_timer_fires_at_expires_at_and_a_cancelled_one_never():
    fired: list[tuple[str, str, str]] = []
    done = asyncio.Event()

    async def expire(tenant, thread_id, run_id):
        fired.append((tenant, thread_id, run_id))
        done.set()

    timers = ExpiryTimers(expire, default_seconds=600)
    due = run_pb2.Run(id="run_due", thread_id="thread_1", expires_at=ids.now())  # due now
    later = run_pb2.Run(id="run_later", thread_id="thread_2", expires_at=ids.now())
    timers.schedule("t", due)
    timers.schedule("t", later)
    timers.cancel("run_later")
    await asyncio.wait_for(done.wait(), timeout=10)
    await asyncio.sleep(0.2)  # give a wrongly kept timer the chance to fire too
    assert fired == [("t", "thread_1", "run_due")]
    await timers.stop()


async def test_stop_cancels_pending_timers():
    fired: list[str] = []

    async def expire(tenant, thread_id, run_id):
        fired.append(run_id)

    timers = ExpiryTimers(expire, default_seconds=600)
    timers.schedule("t", run_pb2.Run(id="run_1", thread_id="thread_1"))  # no expires_at: the default, 600 s
    await timers.stop()
    assert fired == []
