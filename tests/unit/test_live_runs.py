"""The live runs of a process: lookups scoped to tenant and thread, and the drain at shutdown."""

import asyncio

from assistd.v1 import run_pb2

from service.engine import live as live_module
from service.engine.live import LiveRuns, snapshot

E = run_pb2


def _run(run_id: str, thread_id: str = "thread_1") -> run_pb2.Run:
    return run_pb2.Run(id=run_id, thread_id=thread_id, status=E.RUN_STATUS_IN_PROGRESS)


def test_find_answers_only_for_the_runs_tenant_and_thread():
    runs = LiveRuns()
    live = runs.open("tenant_a", _run("run_1"), first_sequence=1)
    assert runs.find("tenant_a", "thread_1", "run_1") is live
    assert runs.find("tenant_b", "thread_1", "run_1") is None
    assert runs.find("tenant_a", "thread_2", "run_1") is None
    assert "run_1" in runs and runs.ids() == {"run_1"}
    runs.remove(live)
    assert runs.find("tenant_a", "thread_1", "run_1") is None and runs.ids() == set()


def test_remove_leaves_a_newer_live_run_of_the_same_id():
    runs = LiveRuns()
    old = runs.open("t", _run("run_1"), first_sequence=1)
    new = runs.open("t", _run("run_1"), first_sequence=5)  # resumed: a new segment
    runs.remove(old)
    assert runs.find("t", "thread_1", "run_1") is new


def test_snapshot_does_not_follow_later_changes():
    run = _run("run_1")
    copy = snapshot(run)
    run.status = E.RUN_STATUS_COMPLETED
    assert copy.status == E.RUN_STATUS_IN_PROGRESS


class _Segment:
    """Stands in for a segment whose model call waits until it is interrupted."""

    def __init__(self) -> None:
        self.interrupted = asyncio.Event()

    def interrupt(self) -> None:
        self.interrupted.set()


async def test_drain_lets_short_runs_end_and_interrupts_the_rest_as_failed(monkeypatch):
    monkeypatch.setattr(live_module, "DRAIN_END_SECONDS", 5.0)
    runs = LiveRuns()
    quick, slow = runs.open("t", _run("run_quick"), 1), runs.open("t", _run("run_slow", "thread_2"), 1)
    for live in (quick, slow):
        live.segment = _Segment()  # type: ignore[assignment]
    quick.task = asyncio.create_task(asyncio.sleep(0))
    slow.task = asyncio.create_task(slow.segment.interrupted.wait())  # type: ignore[union-attr]
    assert await runs.drain(0.2) == 1
    assert quick.end_as is None
    assert slow.end_as is not None and slow.end_as.status == E.RUN_STATUS_FAILED
    assert slow.end_as.error_code == "server_error" and "shutting down" in slow.end_as.error_message
    assert slow.task.done()
