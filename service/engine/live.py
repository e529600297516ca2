"""The runs this process is running (or ending) right now, and how they are stopped at shutdown."""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from assistd.v1 import run_pb2

from service.engine import lifecycle
from service.engine.events import RunChannel
from service.engine.lifecycle import Outcome
from service.engine.segment import Segment

SHUTDOWN_ERROR = "The run was interrupted: the assistd process that ran it was shutting down."
DRAIN_END_SECONDS = 10.0  # how long interrupted runs may take to record their end


@dataclass
class LiveRun:
    """A run this process is running (or ending) right now."""

    tenant: str
    run: run_pb2.Run  # the live object: the store has it as of its last committed event
    channel: RunChannel
    segment: Segment | None = None  # None while a run with no task of its own is being ended
    task: asyncio.Task | None = None
    cancel_requested: bool = False
    end_as: Outcome | None = None  # how an interrupted run ends when the interrupt is not a cancel

    @property
    def working(self) -> bool:
        return self.task is not None and not self.task.done()


class Started(NamedTuple):
    """A run (re)started: its channel, and the run as it was queued."""

    channel: RunChannel
    run: run_pb2.Run


def snapshot(run: run_pb2.Run) -> run_pb2.Run:
    """A copy of a live run object, for a caller to keep while the run goes on changing."""
    copy = run_pb2.Run()
    copy.CopyFrom(run)
    return copy


class LiveRuns:
    """The live runs by run id."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}

    def open(self, tenant: str, run: run_pb2.Run, first_sequence: int, channel: RunChannel | None = None) -> LiveRun:
        """The run, live from now, on a new channel from first_sequence (or on `channel`)."""
        channel = channel or RunChannel(tenant, run.thread_id, run.id, first_sequence)
        live = self._runs[run.id] = LiveRun(tenant, run, channel)
        return live

    def find(self, tenant: str, thread_id: str, run_id: str) -> LiveRun | None:
        """The live run, if it is this tenant's and this thread's."""
        live = self._runs.get(run_id)
        return live if live is not None and live.tenant == tenant and live.run.thread_id == thread_id else None

    def remove(self, live: LiveRun) -> None:
        if self._runs.get(live.run.id) is live:
            del self._runs[live.run.id]

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def __iter__(self) -> Iterator[LiveRun]:
        return iter(list(self._runs.values()))

    def ids(self) -> set[str]:
        return set(self._runs)

    async def drain(self, seconds: float) -> int:
        """Lets the working runs go on for up to `seconds`, then interrupts the rest: they end
        failed, their segments recording the end as usual. Returns how many were interrupted."""
        working = [live.task for live in self if live.task is not None and live.working]
        if working:
            await asyncio.wait(working, timeout=seconds)
        interrupted = []
        for live in self:
            if live.task is None or not live.working or live.segment is None:
                continue
            live.end_as = lifecycle.failed("server_error", SHUTDOWN_ERROR)
            live.segment.interrupt()
            interrupted.append(live.task)
        if interrupted:
            await asyncio.wait(interrupted, timeout=DRAIN_END_SECONDS)
        return len(interrupted)
