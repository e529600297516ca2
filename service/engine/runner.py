"""The run engine: each run is a background task owned by the service, not by a client.

A run's life is told as events (thread.run.created ... done) appended to its log; the
objects (run, steps, messages) are stored as snapshots with the events that carry them.
Clients stream by following the run's channel; a disconnect stops their reading only.
"""

import asyncio
import logging
from typing import AsyncIterator

from assistd.v1 import common_pb2, message_pb2, run_pb2, thread_pb2

from service import ids
from service.engine.events import DONE, EventLog, RunChannel
from service.engine.prompt import build_messages
from service.errors import FailedPrecondition
from service.llm import LLM, ChatRequest, LLMError
from service.repo import Repo
from service.store import Store

log = logging.getLogger(__name__)

E = run_pb2  # event type and status enums live in run_pb2
TERMINAL = {E.RUN_STATUS_CANCELLED, E.RUN_STATUS_FAILED, E.RUN_STATUS_COMPLETED, E.RUN_STATUS_INCOMPLETE, E.RUN_STATUS_EXPIRED}
_STATUS_EVENT = {
    E.RUN_STATUS_QUEUED: E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED,
    E.RUN_STATUS_IN_PROGRESS: E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS,
    E.RUN_STATUS_REQUIRES_ACTION: E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION,
    E.RUN_STATUS_CANCELLING: E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING,
    E.RUN_STATUS_CANCELLED: E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED,
    E.RUN_STATUS_FAILED: E.RUN_EVENT_TYPE_THREAD_RUN_FAILED,
    E.RUN_STATUS_COMPLETED: E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED,
    E.RUN_STATUS_INCOMPLETE: E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE,
    E.RUN_STATUS_EXPIRED: E.RUN_EVENT_TYPE_THREAD_RUN_EXPIRED,
}
_STEP_END_EVENT = {
    E.RUN_STEP_STATUS_COMPLETED: E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED,
    E.RUN_STEP_STATUS_FAILED: E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED,
    E.RUN_STEP_STATUS_CANCELLED: E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED,
    E.RUN_STEP_STATUS_EXPIRED: E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED,
}
# How a run's end leaves the message it was writing.
_INCOMPLETE_REASON = {
    E.RUN_STATUS_CANCELLED: "run_cancelled",
    E.RUN_STATUS_FAILED: "run_failed",
    E.RUN_STATUS_EXPIRED: "run_expired",
    E.RUN_STATUS_INCOMPLETE: "max_tokens",
}
_STEP_STATUS_FOR_RUN = {
    E.RUN_STATUS_COMPLETED: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_INCOMPLETE: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_CANCELLED: E.RUN_STEP_STATUS_CANCELLED,
    E.RUN_STATUS_FAILED: E.RUN_STEP_STATUS_FAILED,
    E.RUN_STATUS_EXPIRED: E.RUN_STEP_STATUS_EXPIRED,
}
SERVER_ERROR = "The server had an error while processing the run."
RESTART_ERROR = "The run was interrupted: the assistd process that ran it stopped."


class _Turn:
    """What one run is producing right now: its current step and message."""

    def __init__(self) -> None:
        self.step: run_pb2.RunStep | None = None
        self.message: message_pb2.Message | None = None
        self.text = ""
        self.prompt_tokens = 0
        self.completion_tokens = 0


class RunEngine:
    def __init__(self, store: Store, repo: Repo, llm: LLM, events: EventLog):
        self._store = store
        self._repo = repo
        self._llm = llm
        self._events = events
        self._channels: dict[str, RunChannel] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._runs: dict[str, run_pb2.Run] = {}  # the live object of each active run
        self._cancel_requested: set[str] = set()
        self._stopping = False

    # ---- starting and following runs -------------------------------------------------

    async def start(
        self,
        tenant: str,
        run: run_pb2.Run,
        new_messages: list[message_pb2.Message],
        new_thread: thread_pb2.Thread | None = None,
    ) -> RunChannel:
        """Claims the thread, stores the run's inputs, and starts it in the background.

        Returns once `thread.run.created` is committed, so the run can be read at once.
        Raises FailedPrecondition if the thread already has an active run.
        """
        if new_thread is not None:
            await self._repo.put(tenant, new_thread, *new_messages)
        active = await self._store.claim_thread(tenant, run.thread_id, run.id)
        if active is not None:
            raise FailedPrecondition(f"Thread {run.thread_id} already has an active run {active}.")
        try:
            if new_thread is None and new_messages:
                await self._repo.put(tenant, *new_messages)
        except BaseException:
            await self._store.release_thread(tenant, run.thread_id, run.id)
            raise
        channel = RunChannel(tenant, run.thread_id, run.id)
        self._channels[run.id] = channel
        self._runs[run.id] = run
        if new_thread is not None:
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_CREATED, thread=new_thread)
        created = self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, run=run)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run=run)
        self._tasks[run.id] = asyncio.create_task(self._execute(channel, run), name=f"run {run.id}")
        await channel.committed(created)
        return channel

    async def watch(self, tenant: str, thread_id: str, run_id: str, after: int) -> AsyncIterator[run_pb2.RunEvent]:
        """The run's events after `after`, replayed from the log and then live, up to the next `done`."""
        await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
        while True:
            channel = self._channels.get(run_id)
            if channel is not None and channel.tenant == tenant and after + 1 >= channel.first_sequence:
                async for event in channel.follow(after):
                    yield event
                return
            stored = await self._store.read_events(tenant, run_id, after)
            for _, data in stored:
                event = run_pb2.RunEvent.FromString(data)
                yield event
                after = event.sequence_number
                if event.event == DONE:
                    return
            if not stored and run_id not in self._channels:
                # Written by no one here: ended runs always end in `done`; wait for the owner.
                await asyncio.sleep(0.1)

    def update_metadata(self, run_id: str, metadata: dict[str, str]) -> run_pb2.Run | None:
        """Replaces a live run's metadata (written in order with its events); None if not live."""
        run = self._runs.get(run_id)
        if run is None:
            return None
        run.metadata.clear()
        run.metadata.update(metadata)
        self._events.snapshot(self._channels[run_id], run)
        snapshot = run_pb2.Run()
        snapshot.CopyFrom(run)
        return snapshot

    # ---- cancelling ------------------------------------------------------------------

    async def cancel(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        """Moves the run to cancelling and stops its work; it ends `cancelled`."""
        run = self._runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            stored = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
            raise FailedPrecondition(
                f"Cannot cancel run with status '{_status_name(stored.status)}'.", param=None
            )
        if run.status in TERMINAL or run.status == E.RUN_STATUS_CANCELLING:
            raise FailedPrecondition(f"Cannot cancel run with status '{_status_name(run.status)}'.")
        channel = self._channels[run_id]
        self._cancel_requested.add(run_id)
        run.status = E.RUN_STATUS_CANCELLING
        sequence = self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING, run=run)
        snapshot = run_pb2.Run()
        snapshot.CopyFrom(run)
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()
        await channel.committed(sequence)
        return snapshot

    # ---- executing -------------------------------------------------------------------

    async def _execute(self, channel: RunChannel, run: run_pb2.Run) -> None:
        tenant = channel.tenant
        turn = _Turn()
        try:
            run.status = E.RUN_STATUS_IN_PROGRESS
            run.started_at = ids.now()
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, run=run)
            history = await self._repo.all(tenant, message_pb2.Message, run.thread_id)
            request = ChatRequest(
                model=run.model,
                messages=build_messages(run, history),
                temperature=run.temperature if run.HasField("temperature") else None,
                top_p=run.top_p if run.HasField("top_p") else None,
                max_tokens=run.max_completion_tokens if run.HasField("max_completion_tokens") else None,
                reasoning_effort=run.reasoning_effort if run.HasField("reasoning_effort") else None,
            )
            finish_reason = None
            async for delta in self._llm.stream(request):
                if delta.text:
                    self._start_message(channel, run, turn)
                    turn.text += delta.text
                    self._emit_text_delta(channel, turn, delta.text)
                if delta.prompt_tokens is not None:
                    turn.prompt_tokens = delta.prompt_tokens
                    turn.completion_tokens = delta.completion_tokens or 0
                finish_reason = delta.finish_reason or finish_reason
            self._start_message(channel, run, turn)  # an empty answer is still a message
            limited = finish_reason == "length" and run.HasField("max_completion_tokens")
            if limited:
                run.incomplete_details.reason = "max_completion_tokens"
            self._finish(channel, run, turn, E.RUN_STATUS_INCOMPLETE if limited else E.RUN_STATUS_COMPLETED)
        except asyncio.CancelledError:
            if run.id not in self._cancel_requested:
                raise  # the service is shutting down: recovery at next start fails the run
            self._finish(channel, run, turn, E.RUN_STATUS_CANCELLED)
        except LLMError as exc:
            log.info("run %s failed: %s: %s", run.id, exc.code, exc.message)
            self._finish(channel, run, turn, E.RUN_STATUS_FAILED, exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run.id)
            self._finish(channel, run, turn, E.RUN_STATUS_FAILED, "server_error", SERVER_ERROR)
        finally:
            await self._close(channel, run)

    def _start_message(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn) -> None:
        """Opens a message_creation step and its message, once per turn."""
        if turn.message is not None:
            return
        now = ids.now()
        message = message_pb2.Message(
            id=ids.new_id("msg_"),
            object="thread.message",
            created_at=now,
            thread_id=run.thread_id,
            status=message_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=message_pb2.MESSAGE_ROLE_ASSISTANT,
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = run_pb2.RunStep(
            id=ids.new_id("step_"),
            object="thread.run.step",
            created_at=now,
            run_id=run.id,
            assistant_id=run.assistant_id,
            thread_id=run.thread_id,
            type=E.RUN_STEP_TYPE_MESSAGE_CREATION,
            status=E.RUN_STEP_STATUS_IN_PROGRESS,
        )
        step.step_details.type = E.RUN_STEP_TYPE_MESSAGE_CREATION
        step.step_details.message_creation.message_id = message.id
        turn.step, turn.message = step, message
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_step=step)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, run_step=step)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, message=message)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS, message=message)

    def _emit_text_delta(self, channel: RunChannel, turn: _Turn, text: str) -> None:
        event = message_pb2.MessageDeltaEvent(id=turn.message.id, object="thread.message.delta")
        part = event.delta.content.add(index=0)
        part.text.value = text
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, message_delta=event)

    def _finish(
        self,
        channel: RunChannel,
        run: run_pb2.Run,
        turn: _Turn,
        status: int,
        error_code: str = "",
        error_message: str = "",
    ) -> None:
        """Closes the turn's message and step, then the run, with the events OpenAI sends."""
        now = ids.now()
        usage = common_pb2.Usage(
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            total_tokens=turn.prompt_tokens + turn.completion_tokens,
        )
        if turn.message is not None:
            message = turn.message
            if turn.text:
                message.content.add().text.value = turn.text
            if status == E.RUN_STATUS_COMPLETED:
                message.status = message_pb2.MESSAGE_STATUS_COMPLETED
                message.completed_at = now
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, message=message)
            else:
                message.status = message_pb2.MESSAGE_STATUS_INCOMPLETE
                message.incomplete_at = now
                message.incomplete_details.reason = _INCOMPLETE_REASON[status]
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE, message=message)
        if turn.step is not None:
            step = turn.step
            step.status = _STEP_STATUS_FOR_RUN[status]
            _stamp_step(step, now)
            step.usage.CopyFrom(usage)
            if error_code:
                step.last_error.code, step.last_error.message = error_code, error_message
            self._emit(channel, _STEP_END_EVENT[step.status], run_step=step)
        run.status = status
        run.ClearField("expires_at")
        run.usage.CopyFrom(usage)
        if status == E.RUN_STATUS_FAILED:
            run.failed_at = now
            run.last_error.code, run.last_error.message = error_code, error_message
        elif status == E.RUN_STATUS_CANCELLED:
            run.cancelled_at = now
        elif status in (E.RUN_STATUS_COMPLETED, E.RUN_STATUS_INCOMPLETE):
            run.completed_at = now
        self._emit(channel, _STATUS_EVENT[status], run=run)

    async def _close(self, channel: RunChannel, run: run_pb2.Run) -> None:
        """Ends the stream segment with `done`, frees the thread, forgets the live run."""
        try:
            if run.status not in TERMINAL and run.status != E.RUN_STATUS_REQUIRES_ACTION and not self._stopping:
                # Finishing went wrong itself: still never leave the run in progress.
                run.status = E.RUN_STATUS_FAILED
                run.failed_at = ids.now()
                run.last_error.code, run.last_error.message = "server_error", SERVER_ERROR
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_FAILED, run=run)
            if run.status in TERMINAL:
                await self._store.release_thread(channel.tenant, run.thread_id, run.id)
            done = self._emit(channel, DONE)
            await channel.committed(done)
        finally:
            channel.close()
            self._channels.pop(run.id, None)
            self._tasks.pop(run.id, None)
            self._runs.pop(run.id, None)
            self._cancel_requested.discard(run.id)

    def _emit(self, channel: RunChannel, event_type: int, **payload) -> int:
        event = run_pb2.RunEvent(event=event_type)
        for name, obj in payload.items():
            getattr(event, name).CopyFrom(obj)
        return self._events.append(channel, event)

    # ---- recovery ----------------------------------------------------------------------

    async def recover(self) -> int:
        """Fails runs that a previous process left active (it stopped mid-run). Returns how many."""
        recovered = 0
        for tenant, thread_id, run_id in await self._store.active_runs():
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            if run is None:
                await self._store.release_thread(tenant, thread_id, run_id)
                continue
            if run.status == E.RUN_STATUS_REQUIRES_ACTION:
                continue  # waits for the client, not for a process
            stored = await self._store.read_events(tenant, run_id, 0)
            channel = RunChannel(tenant, thread_id, run_id, first_sequence=(stored[-1][0] + 1) if stored else 1)
            turn = _Turn()
            for step in await self._repo.all(tenant, run_pb2.RunStep, run_id):
                if step.status == E.RUN_STEP_STATUS_IN_PROGRESS:
                    turn.step = step
                    if step.step_details.HasField("message_creation"):
                        turn.message = await self._repo.get(
                            tenant, message_pb2.Message, step.step_details.message_creation.message_id, thread_id
                        )
            self._finish(channel, run, turn, E.RUN_STATUS_FAILED, "server_error", RESTART_ERROR)
            await self._close(channel, run)
            recovered += 1
        return recovered

    async def shutdown(self) -> None:
        """Stops the runs of this process; the next start fails them (see recover)."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _stamp_step(step: run_pb2.RunStep, now: int) -> None:
    field = {
        E.RUN_STEP_STATUS_COMPLETED: "completed_at",
        E.RUN_STEP_STATUS_FAILED: "failed_at",
        E.RUN_STEP_STATUS_CANCELLED: "cancelled_at",
        E.RUN_STEP_STATUS_EXPIRED: "expired_at",
    }[step.status]
    setattr(step, field, now)


def _status_name(status: int) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()
