"""The run engine: each run is a background task owned by the service, not by a client.

A run's life is told as events (thread.run.created ... done) appended to its log; the
objects (run, steps, messages) are stored as snapshots with the events that carry them.
Clients stream by following the run's channel; a disconnect stops their reading only.

A run is a loop of model turns. A turn streams text into a message_creation step and
function calls into a tool_calls step; function calls end the segment in requires_action
until the client submits their outputs, which resumes the same run in a new segment.

State changes that can race (cancel, submit, expiry, a segment ending) happen under the
run's lock. Cancelling interrupts only the model call, never the task that records the run.
"""

import asyncio
import logging
import os
import socket
import uuid
from typing import AsyncIterator

from assistd.v1 import assistant_pb2, common_pb2, message_pb2, run_pb2, thread_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

from service import ids
from service.engine.events import DONE, EventLog, RunChannel
from service.engine.prompt import build_messages, response_format_for_model, tool_choice_for_model, tools_for_model
from service.engine.tool_prompt import CallParser, adapt_request
from service.errors import FailedPrecondition, InvalidArgument, missing
from service.locks import KeyedLocks
from service.llm import LLM, ChatRequest, LLMError, ToolCallFragment
from service.repo import Repo, kind_of
from service.retrieval import citations
from service.retrieval.embed import Embedder
from service.retrieval.search import search
from service.store import ListQuery, Store

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
_STEP_END = {  # step status -> (its event, the field stamped with the time)
    E.RUN_STEP_STATUS_COMPLETED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, "completed_at"),
    E.RUN_STEP_STATUS_FAILED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED, "failed_at"),
    E.RUN_STEP_STATUS_CANCELLED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED, "cancelled_at"),
    E.RUN_STEP_STATUS_EXPIRED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED, "expired_at"),
}
_STEP_STATUS_FOR_RUN = {
    E.RUN_STATUS_COMPLETED: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_INCOMPLETE: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_REQUIRES_ACTION: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_CANCELLED: E.RUN_STEP_STATUS_CANCELLED,
    E.RUN_STATUS_FAILED: E.RUN_STEP_STATUS_FAILED,
    E.RUN_STATUS_EXPIRED: E.RUN_STEP_STATUS_EXPIRED,
}
# How a run's end leaves the message it was writing.
_INCOMPLETE_REASON = {
    E.RUN_STATUS_CANCELLED: "run_cancelled",
    E.RUN_STATUS_FAILED: "run_failed",
    E.RUN_STATUS_EXPIRED: "run_expired",
    E.RUN_STATUS_INCOMPLETE: "max_tokens",
}
WAITING = "/w"  # the end of the ownership token of a run waiting for tool outputs
CANCEL_POLL_SECONDS = 0.5  # how often a replica looks for cancel requests for its runs
INGESTION_WAIT_SECONDS = 120  # longest a run waits for its vector stores' files to be ingested
SERVER_ERROR = "The server had an error while processing the run."
RESTART_ERROR = "The run was interrupted: the assistd process that ran it stopped (or lost its lease)."


def status_name(status: int) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()


class _Turn:
    """What one model turn is producing: a message (text) and/or a tool_calls step."""

    def __init__(self) -> None:
        self.message: message_pb2.Message | None = None
        self.message_step: run_pb2.RunStep | None = None
        self.message_settled = False  # completed before the turn ended (it went on to call tools)
        self.text = ""
        self.tool_step: run_pb2.RunStep | None = None
        self.call_index: dict = {}  # provider's tool call key -> ours (0-based, in order)
        self.provider_ids: dict[int, str] = {}  # provider's index -> the call id it last named there
        self.searching = False  # file_search is offered to the model in this turn
        self.search_args: dict[int, str] = {}  # provider's index of a file_search call -> its arguments
        self.annotations: list[message_pb2.Annotation] = []  # file citations in the final text
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None


class _Outcome:
    """How a segment of a run ends."""

    def __init__(self, status: int, error_code: str = "", error_message: str = "", reason: str = ""):
        self.status = status
        self.error_code = error_code
        self.error_message = error_message
        self.incomplete_reason = reason


class RunEngine:
    def __init__(
        self,
        store: Store,
        repo: Repo,
        llm: LLM,
        events: EventLog,
        expiry_seconds: int = 600,
        tool_prompt_models: frozenset[str] = frozenset(),
        embedder: Embedder | None = None,
        lease_seconds: int = 15,
    ):
        self._store = store
        self._repo = repo
        self._llm = llm
        self._events = events
        self._expiry_seconds = expiry_seconds
        self._tool_prompt_models = tool_prompt_models
        self._embedder = embedder
        self._lease_seconds = lease_seconds
        # Who runs runs here: its heartbeat keeps them ours; when it lapses, another process ends them.
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._monitor: asyncio.Task | None = None
        self._tokens: dict[str, str] = {}  # run id -> the ownership token this process holds
        self._channels: dict[str, RunChannel] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._model_calls: dict[str, asyncio.Task] = {}
        self._runs: dict[str, run_pb2.Run] = {}  # the live object of each run with a task here
        self._cancel_requested: set[str] = set()
        self._locks = KeyedLocks()
        self._expiry_timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task] = set()
        self._stopping = False

    def _lock(self, run_id: str) -> asyncio.Lock:
        return self._locks[run_id]

    def _new_token(self, run_id: str, waiting: bool = False) -> str:
        """A fresh ownership token for a run this process takes: `<owner>/<nonce>`, plus `/w` while
        the run waits for tool outputs. Every take-over changes the token, so of two replicas racing
        from the same token only one wins; and only a waiting token can be taken by a submit, a
        cancel or an expiry, so none of them can take a run another replica is already resuming."""
        token = self._tokens[run_id] = f"{self.owner}/{uuid.uuid4().hex[:8]}" + ("/w" if waiting else "")
        return token

    async def _mark_waiting(self, tenant: str, run: run_pb2.Run) -> None:
        """Swaps the run's token for a waiting one, so a submit may take it from here on."""
        held = self._tokens.get(run.id, "")
        await self._store.take_over(tenant, run.thread_id, run.id, self._new_token(run.id, waiting=True), old_owner=held)

    # ---- starting, resuming and following runs -----------------------------------------

    async def start(
        self,
        tenant: str,
        run: run_pb2.Run,
        new_messages: list[message_pb2.Message],
        new_thread: thread_pb2.Thread | None = None,
    ) -> RunChannel:
        """Claims the thread, stores the run's inputs, and starts it in the background.

        Returns once `thread.run.created` is committed, so the run can be read at once.
        Raises FailedPrecondition if the thread already has an active run. Once begun, the start
        completes even if the caller goes away, so a claim never outlives a run that never was.
        """
        return await asyncio.shield(self._start(tenant, run, new_messages, new_thread))

    async def _start(self, tenant, run, new_messages, new_thread) -> RunChannel:
        if new_thread is not None:
            await self._repo.put(tenant, new_thread, *new_messages)
        active = await self._store.claim_thread(tenant, run.thread_id, run.id, self._new_token(run.id))
        if active is not None:
            raise FailedPrecondition(f"Thread {run.thread_id} already has an active run {active}.")
        try:
            if new_thread is None and new_messages:
                await self._repo.put(tenant, *new_messages)
        except BaseException:
            await self._store.release_thread(tenant, run.thread_id, run.id)
            raise
        channel = self._open(tenant, run, first_sequence=1)
        if new_thread is not None:
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_CREATED, thread=new_thread)
        created = self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, run=run)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run=run)
        self._tasks[run.id] = asyncio.create_task(self._execute(channel, run), name=f"run {run.id}")
        await channel.committed(created)
        return channel

    def _open(self, tenant: str, run: run_pb2.Run, first_sequence: int) -> RunChannel:
        channel = RunChannel(tenant, run.thread_id, run.id, first_sequence)
        self._channels[run.id] = channel
        self._runs[run.id] = run
        return channel

    async def submit_tool_outputs(
        self, tenant: str, thread_id: str, run_id: str, outputs: list[run_pb2.ToolOutput]
    ) -> RunChannel:
        """Records the outputs on the run's tool_calls step and resumes the run.

        Raises FailedPrecondition unless the run waits for tool outputs, InvalidArgument
        unless `outputs` answers each pending call exactly once. Nothing changes on error; once
        begun, a submit completes even if the caller goes away.
        """
        return await asyncio.shield(self._submit(tenant, thread_id, run_id, outputs))

    async def _submit(self, tenant, thread_id, run_id, outputs) -> RunChannel:
        async with self._lock(run_id):
            run = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
            if run.status != E.RUN_STATUS_REQUIRES_ACTION or run_id in self._runs:
                raise FailedPrecondition(f'Runs in status "{status_name(run.status)}" do not accept tool outputs.')
            by_id = _check_outputs(run, outputs)
            current = await self._store.run_owner(tenant, thread_id)
            if self._store.shared and (
                current is None
                or current[0] != run_id
                or not current[1].endswith(WAITING)
                or not await self._store.take_over(tenant, thread_id, run_id, self._new_token(run_id), old_owner=current[1])
            ):  # another replica is resuming it right now
                raise FailedPrecondition(f"Run {run_id} is being resumed already.")
            turn = await self._turn_from_store(tenant, run)
            step = turn.tool_step
            if step is None:
                raise FailedPrecondition(f"Run {run_id} has no tool calls waiting for outputs.")
            for call in step.step_details.tool_calls:
                if call.id in by_id:
                    call.function.output = by_id[call.id]
            step.status = E.RUN_STEP_STATUS_COMPLETED
            step.completed_at = ids.now()
            self._cancel_expiry(run_id)
            run.status = E.RUN_STATUS_QUEUED
            run.ClearField("required_action")
            channel = self._open(tenant, run, await self._store.last_sequence(tenant, run_id) + 1)
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, run_step=step)
            queued = self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run=run)
            self._tasks[run.id] = asyncio.create_task(self._execute(channel, run), name=f"run {run.id}")
        await channel.committed(queued)
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
                run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
                if run is None or run.status in TERMINAL:
                    return  # nothing more will come
                # The next segment (after tool outputs) or another process will write more.
                await asyncio.sleep(0.1)

    async def update_metadata(self, tenant: str, thread_id: str, run_id: str, metadata: dict[str, str]) -> run_pb2.Run:
        """Replaces a run's metadata under the run's lock, so no state change of the run is lost
        to it: a live run's change is written in order with its events."""
        async with self._lock(run_id):
            run = self._runs.get(run_id)
            if run is not None and run.thread_id == thread_id and self._channels[run_id].tenant == tenant:
                run.metadata.clear()
                run.metadata.update(metadata)
                await self._events.snapshot(self._channels[run_id], run)
                return _copy(run)
            run = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
            run.metadata.clear()
            run.metadata.update(metadata)
            await self._repo.put(tenant, run)
            return run

    # ---- cancelling and expiring ---------------------------------------------------------

    async def cancel(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        """Cancels a run that has not ended. A working run goes `cancelling`, its model call is
        stopped, and it ends `cancelled`; a run waiting for tool outputs is cancelled at once.
        Once begun, a cancel completes even if the caller goes away."""
        return await asyncio.shield(self._cancel(tenant, thread_id, run_id))

    async def _cancel(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        async with self._lock(run_id):
            run = self._runs.get(run_id)
            if run is not None and run.thread_id == thread_id and self._channels[run_id].tenant == tenant:
                if run.status in TERMINAL or run.status == E.RUN_STATUS_CANCELLING:
                    raise FailedPrecondition(f"Cannot cancel run with status '{status_name(run.status)}'.")
                self._cancel_requested.add(run_id)
                run.status = E.RUN_STATUS_CANCELLING
                sequence = self._emit(self._channels[run_id], E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING, run=run)
                snapshot = _copy(run)
                call = self._model_calls.get(run_id)
                if call is not None:
                    call.cancel()
                channel = self._channels[run_id]
            else:
                stored = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
                current = await self._store.run_owner(tenant, thread_id)
                owner = current[1] if current and current[0] == run_id else None
                if stored.status in (E.RUN_STATUS_QUEUED, E.RUN_STATUS_IN_PROGRESS) and self._store.shared and owner:
                    # Another replica runs it: ask that one; its monitor cancels the run.
                    await self._store.request_cancel(owner.split("/", 1)[0], tenant, thread_id, run_id)
                    stored.status = E.RUN_STATUS_CANCELLING
                    return stored
                if stored.status != E.RUN_STATUS_REQUIRES_ACTION or owner is None:
                    raise FailedPrecondition(f"Cannot cancel run with status '{status_name(stored.status)}'.")
                if self._store.shared and (
                    not owner.endswith(WAITING)
                    or not await self._store.take_over(tenant, thread_id, run_id, self._new_token(run_id), old_owner=owner)
                ):
                    raise FailedPrecondition(f"Run {run_id} is being resumed; cancel it again in a moment.")
                return await self._end_waiting_run(tenant, stored, _Outcome(E.RUN_STATUS_CANCELLED))
        await channel.committed(sequence)
        return snapshot

    async def _end_waiting_run(self, tenant: str, run: run_pb2.Run, outcome: _Outcome) -> run_pb2.Run:
        """Ends a run that waits for tool outputs (no task of its own). Caller holds the run's lock."""
        self._cancel_expiry(run.id)
        turn = await self._turn_from_store(tenant, run)
        channel = self._open(tenant, run, await self._store.last_sequence(tenant, run.id) + 1)
        self._conclude(channel, run, turn, outcome)
        snapshot = _copy(run)
        await self._close(channel, run)
        return snapshot

    def _schedule_expiry(self, tenant: str, run: run_pb2.Run) -> None:
        delay = max(0.0, run.expires_at - ids.now()) if run.HasField("expires_at") else self._expiry_seconds
        loop = asyncio.get_running_loop()
        self._expiry_timers[run.id] = loop.call_later(
            delay, lambda: self._spawn(self._expire(tenant, run.thread_id, run.id))
        )

    def _cancel_expiry(self, run_id: str) -> None:
        timer = self._expiry_timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _expire(self, tenant: str, thread_id: str, run_id: str) -> None:
        self._expiry_timers.pop(run_id, None)
        async with self._lock(run_id):
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            if run is None or run.status != E.RUN_STATUS_REQUIRES_ACTION or run_id in self._runs:
                return
            if run.expires_at > ids.now():  # resumed and waiting again since this timer was set
                self._schedule_expiry(tenant, run)
                return
            current = await self._store.run_owner(tenant, thread_id)
            if current is None or current[0] != run_id or not current[1].endswith(WAITING):
                return  # resumed (or ended) since this timer was set
            if not self._store.shared or await self._store.take_over(
                tenant, thread_id, run_id, self._new_token(run_id), old_owner=current[1]
            ):
                await self._end_waiting_run(tenant, run, _Outcome(E.RUN_STATUS_EXPIRED))

    # ---- executing -------------------------------------------------------------------

    async def _execute(self, channel: RunChannel, run: run_pb2.Run) -> None:
        turns = [_Turn()]  # the last one is the turn in progress
        try:
            run.status = E.RUN_STATUS_IN_PROGRESS
            if not run.HasField("started_at"):
                run.started_at = ids.now()
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, run=run)
            outcome = await self._model_turns(channel, run, turns)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # the service is stopping: recovery at next start fails the run
            outcome = _Outcome(E.RUN_STATUS_CANCELLED)
        except LLMError as exc:
            log.info("run %s failed: %s: %s", run.id, exc.code, exc.message)
            outcome = _Outcome(E.RUN_STATUS_FAILED, exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run.id)
            outcome = _Outcome(E.RUN_STATUS_FAILED, "server_error", SERVER_ERROR)
        async with self._lock(run.id):
            held = (run.id, self._tokens.get(run.id))
            if self._store.shared and await self._store.run_owner(channel.tenant, run.thread_id) != held:
                # Our lease lapsed and another replica ended this run: write nothing more.
                log.error("run %s: no longer its owner; dropping its end", run.id)
                self._forget(channel, run)
                return
            if run.id in self._cancel_requested:
                outcome = _Outcome(E.RUN_STATUS_CANCELLED)  # cancelled while finishing: cancel wins
            if outcome.status == E.RUN_STATUS_REQUIRES_ACTION:
                await self._mark_waiting(channel.tenant, run)
            try:
                self._conclude(channel, run, turns[-1], outcome)
            except Exception:
                log.exception("run %s: recording its end failed", run.id)
            await self._close(channel, run)

    async def _model_turns(self, channel: RunChannel, run: run_pb2.Run, turns: list[_Turn]) -> _Outcome:
        """Calls the model until the run is done or needs the client; file_search calls are
        answered here and the model called again. Returns how the segment ended."""
        vector_store_ids = await self._search_context(channel.tenant, run)
        while True:
            turn = turns[-1]
            if run.id in self._cancel_requested:
                return _Outcome(E.RUN_STATUS_CANCELLED)
            used = run.usage.completion_tokens
            if run.HasField("max_completion_tokens") and used >= run.max_completion_tokens:
                return _Outcome(E.RUN_STATUS_INCOMPLETE, reason="max_completion_tokens")
            await channel.committed(channel.next_sequence - 1)  # read our own writes (e.g. submitted outputs)
            steps = await self._repo.all(channel.tenant, run_pb2.RunStep, run.id)
            messages = build_messages(run, await self._repo.all(channel.tenant, message_pb2.Message, run.thread_id), steps)
            if run.HasField("max_prompt_tokens"):
                prompt_tokens = await self._llm.count_tokens(run.model, messages)
                if run.usage.prompt_tokens + prompt_tokens > run.max_prompt_tokens:
                    return _Outcome(E.RUN_STATUS_INCOMPLETE, reason="max_prompt_tokens")
            if run.id in self._cancel_requested:
                return _Outcome(E.RUN_STATUS_CANCELLED)
            tools = tools_for_model(run)
            if vector_store_ids:
                tools.append(citations.FUNCTION)
                turn.searching = True
            request = ChatRequest(
                model=run.model,
                messages=messages,
                temperature=run.temperature if run.HasField("temperature") else None,
                top_p=run.top_p if run.HasField("top_p") else None,
                max_tokens=run.max_completion_tokens - used if run.HasField("max_completion_tokens") else None,
                tools=tools,
                tool_choice=tool_choice_for_model(run) if tools else None,
                parallel_tool_calls=run.parallel_tool_calls if tools else None,
                response_format=response_format_for_model(run),
                reasoning_effort=run.reasoning_effort if run.HasField("reasoning_effort") else None,
            )
            parser = None
            if tools and run.model in self._tool_prompt_models:
                parser = CallParser({tool["function"]["name"] for tool in tools})
                request = adapt_request(request)
            call = asyncio.create_task(self._stream_turn(channel, run, turn, request, parser))
            self._model_calls[run.id] = call
            try:
                await call
            finally:
                self._model_calls.pop(run.id, None)
            if turn.search_args:
                await self._search(channel, run, turn, vector_store_ids)
                if turn.tool_step is None:  # only searches: let the model read the results
                    turns.append(_Turn())
                    continue
            if turn.finish_reason == "length" and run.HasField("max_completion_tokens"):
                return _Outcome(E.RUN_STATUS_INCOMPLETE, reason="max_completion_tokens")  # calls may be cut off too
            if turn.tool_step is not None:
                return _Outcome(E.RUN_STATUS_REQUIRES_ACTION)
            self._start_message(channel, run, turn)  # an empty answer is still a message
            if vector_store_ids and turn.text:
                await channel.committed(channel.next_sequence - 1)
                known = citations.sources(await self._repo.all(channel.tenant, run_pb2.RunStep, run.id))
                turn.annotations = citations.annotate(turn.text, known)
            return _Outcome(E.RUN_STATUS_COMPLETED)

    async def _search_context(self, tenant: str, run: run_pb2.Run) -> list[str]:
        """The vector stores file_search searches for this run (the assistant's and the thread's),
        once their files are ingested; [] when the run has no file_search tool."""
        if not any(tool.WhichOneof("kind") == "file_search" for tool in run.tools):
            return []
        assistant = await self._repo.get(tenant, assistant_pb2.Assistant, run.assistant_id)
        thread = await self._repo.get(tenant, thread_pb2.Thread, run.thread_id)
        stores = [
            *(assistant.tool_resources.file_search.vector_store_ids if assistant else []),
            *(thread.tool_resources.file_search.vector_store_ids if thread else []),
        ]
        stores = list(dict.fromkeys(stores))
        deadline = asyncio.get_running_loop().time() + INGESTION_WAIT_SECONDS
        for vs_id in stores:  # as OpenAI does, a run waits for its vector stores to be ready
            while asyncio.get_running_loop().time() < deadline:
                pending = await self._store.list_page(tenant, kind_of(vs_pb2.VectorStoreFile), vs_id, ListQuery(limit=1), "in_progress")
                if not pending.items:
                    break
                await asyncio.sleep(0.1)
        return stores

    async def _search(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn, vector_store_ids: list[str]) -> None:
        """Runs the turn's file_search calls server-side as one completed file_search step, after
        closing whatever message the model wrote before calling it."""
        settings = next((t.file_search for t in run.tools if t.WhichOneof("kind") == "file_search"), None)
        limit = settings.max_num_results if settings is not None and settings.HasField("max_num_results") else 20
        threshold = settings.ranking_options.score_threshold if settings is not None else 0.0
        if turn.message is not None and not turn.message_settled:
            self._settle_message(channel, turn)
        step = self._new_step(run, E.RUN_STEP_TYPE_TOOL_CALLS)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_step=step)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, run_step=step)
        for index, arguments in enumerate(turn.search_args.values()):
            call = step.step_details.tool_calls.add(id=ids.new_id("call_"))
            call.file_search.ranking_options.ranker = settings.ranking_options.ranker if settings and settings.ranking_options.ranker else "default_2024_08_21"
            call.file_search.ranking_options.score_threshold = threshold
            delta = run_pb2.RunStepDeltaEvent(id=step.id, object="thread.run.step.delta")
            delta.delta.step_details.type = E.RUN_STEP_TYPE_TOOL_CALLS
            delta.delta.step_details.tool_calls.add(index=index, id=call.id).file_search.SetInParent()
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, run_step_delta=delta)
            queries = citations.queries_of(arguments)
            hits = await search(
                self._repo, channel.tenant, vector_store_ids, queries, limit, threshold, embedder=self._embedder
            )
            for hit in hits:
                result = call.file_search.results.add(file_id=hit.file_id, file_name=hit.filename, score=hit.score)
                result.content.add(type="text", text=hit.text)
        step.status = E.RUN_STEP_STATUS_COMPLETED
        step.completed_at = ids.now()
        step.usage.CopyFrom(_usage(turn))
        _add_usage(run, turn)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, run_step=without_result_content(step))
        await self._events.snapshot(channel, step)  # the stored step keeps the contents, for include[]

    def _settle_message(self, channel: RunChannel, turn: _Turn) -> None:
        """Completes a message the model wrote before it called tools."""
        turn.message_settled = True
        now = ids.now()
        turn.message.content.add().text.value = turn.text
        turn.message.status = message_pb2.MESSAGE_STATUS_COMPLETED
        turn.message.completed_at = now
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, message=turn.message)
        turn.message_step.status = E.RUN_STEP_STATUS_COMPLETED
        turn.message_step.completed_at = now
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, run_step=turn.message_step)

    async def _stream_turn(
        self, channel: RunChannel, run: run_pb2.Run, turn: _Turn, request: ChatRequest, parser: CallParser | None
    ) -> None:
        """Streams one model answer into the turn. With a parser (prompt-based tools), text that
        may be a call is held back and turned into tool calls at the end."""
        async for delta in self._llm.stream(request):
            self._text(channel, run, turn, parser.feed(delta.text) if parser else delta.text)
            for fragment in delta.tool_calls:
                self._tool_call_fragment(channel, run, turn, fragment)
            if delta.prompt_tokens is not None:
                turn.prompt_tokens = delta.prompt_tokens
                turn.completion_tokens = delta.completion_tokens or 0
            turn.finish_reason = delta.finish_reason or turn.finish_reason
        if parser is not None:
            text, calls = parser.finish()
            self._text(channel, run, turn, text)
            for fragment in calls:
                self._tool_call_fragment(channel, run, turn, fragment)

    def _text(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn, text: str) -> None:
        if text:
            self._start_message(channel, run, turn)
            turn.text += text
            self._emit_text_delta(channel, turn, text)

    def _new_step(self, run: run_pb2.Run, step_type: int) -> run_pb2.RunStep:
        step = run_pb2.RunStep(
            id=ids.new_id("step_"),
            object="thread.run.step",
            created_at=ids.now(),
            run_id=run.id,
            assistant_id=run.assistant_id,
            thread_id=run.thread_id,
            type=step_type,
            status=E.RUN_STEP_STATUS_IN_PROGRESS,
        )
        step.step_details.type = step_type
        return step

    def _start_message(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn) -> None:
        """Opens a message_creation step and its message, once per turn."""
        if turn.message is not None:
            return
        message = message_pb2.Message(
            id=ids.new_id("msg_"),
            object="thread.message",
            created_at=ids.now(),
            thread_id=run.thread_id,
            status=message_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=message_pb2.MESSAGE_ROLE_ASSISTANT,
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = self._new_step(run, E.RUN_STEP_TYPE_MESSAGE_CREATION)
        step.step_details.message_creation.message_id = message.id
        turn.message_step, turn.message = step, message
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_step=step)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, run_step=step)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, message=message)
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS, message=message)

    def _emit_text_delta(self, channel: RunChannel, turn: _Turn, text: str) -> None:
        event = message_pb2.MessageDeltaEvent(id=turn.message.id, object="thread.message.delta")
        event.delta.content.add(index=0).text.value = text
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, message_delta=event)

    def _tool_call_fragment(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn, fragment: ToolCallFragment) -> None:
        """Adds a streamed piece of a function call to the turn's tool_calls step, and streams it on.
        The first delta of a call carries its id and name; later ones only argument text.
        Calls of the file_search function are kept aside: assistd runs them (see _search)."""
        continues_search = not fragment.name and not fragment.id and fragment.index in turn.search_args
        if turn.searching and (fragment.name == citations.FUNCTION_NAME or continues_search):
            turn.search_args[fragment.index] = turn.search_args.get(fragment.index, "") + (fragment.arguments or "")
            return
        if turn.tool_step is None:
            if turn.message is not None and not turn.message_settled:
                self._settle_message(channel, turn)  # as OpenAI: the message step ends before the tool step
            turn.tool_step = self._new_step(run, E.RUN_STEP_TYPE_TOOL_CALLS)
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, run_step=turn.tool_step)
            self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, run_step=turn.tool_step)
        calls = turn.tool_step.step_details.tool_calls
        event = run_pb2.RunStepDeltaEvent(id=turn.tool_step.id, object="thread.run.step.delta")
        event.delta.step_details.type = E.RUN_STEP_TYPE_TOOL_CALLS
        key = _call_key(turn, fragment)
        index = turn.call_index.get(key)
        if index is None:
            index = turn.call_index[key] = len(calls)
            call = calls.add(id=ids.new_id("call_"))  # our own ids: unique whatever the provider sends
            call.function.SetInParent()
            delta = event.delta.step_details.tool_calls.add(index=index, id=call.id)
            delta.function.arguments = ""
        else:
            call = calls[index]
            delta = event.delta.step_details.tool_calls.add(index=index)
            delta.function.SetInParent()
        if fragment.name:
            call.function.name += fragment.name
            delta.function.name = fragment.name
        if fragment.arguments:
            call.function.arguments += fragment.arguments
            delta.function.arguments = fragment.arguments
        self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, run_step_delta=event)

    def _conclude(self, channel: RunChannel, run: run_pb2.Run, turn: _Turn, outcome: _Outcome) -> None:
        """Closes the turn's message and steps, then moves the run to the outcome's status,
        with the events OpenAI sends. Caller holds the run's lock."""
        now = ids.now()
        status = outcome.status
        turn_usage = _usage(turn)
        if turn.message is not None and not turn.message_settled:
            message = turn.message
            if turn.text:
                text = message.content.add().text
                text.value = turn.text
                text.annotations.extend(turn.annotations)
            if _STEP_STATUS_FOR_RUN[status] == E.RUN_STEP_STATUS_COMPLETED and status != E.RUN_STATUS_INCOMPLETE:
                message.status = message_pb2.MESSAGE_STATUS_COMPLETED
                message.completed_at = now
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, message=message)
            else:
                message.status = message_pb2.MESSAGE_STATUS_INCOMPLETE
                message.incomplete_at = now
                message.incomplete_details.reason = _INCOMPLETE_REASON[status]
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE, message=message)
        # The turn's usage is booked on the step that ends it: the tool step if any, else the message step.
        usage_step = turn.tool_step or turn.message_step
        for step in (turn.message_step, turn.tool_step):
            if step is None or (step is turn.message_step and turn.message_settled):
                continue
            if step is usage_step and turn_usage.total_tokens:  # a turn rebuilt from the store has none
                step.usage.CopyFrom(turn_usage)
            if step is turn.tool_step and status == E.RUN_STATUS_REQUIRES_ACTION:
                self._events.snapshot(channel, step)  # stays in_progress, now with whole arguments
                continue
            step.status = _STEP_STATUS_FOR_RUN[status]
            if step is turn.tool_step and status == E.RUN_STATUS_INCOMPLETE:
                step.status = E.RUN_STEP_STATUS_CANCELLED  # its calls were cut off: never ran
            event_type, stamp = _STEP_END[step.status]
            setattr(step, stamp, now)
            if outcome.error_code:
                step.last_error.code, step.last_error.message = outcome.error_code, outcome.error_message
            self._emit(channel, event_type, run_step=step)
        run.status = status
        _add_usage(run, turn)
        if status == E.RUN_STATUS_REQUIRES_ACTION:
            run.expires_at = now + self._expiry_seconds
            run.required_action.type = "submit_tool_outputs"
            run.required_action.submit_tool_outputs.tool_calls.extend(turn.tool_step.step_details.tool_calls)
            self._schedule_expiry(channel.tenant, run)
        else:
            run.ClearField("expires_at")
            run.ClearField("required_action")
        if status == E.RUN_STATUS_FAILED:
            run.failed_at = now
            run.last_error.code, run.last_error.message = outcome.error_code, outcome.error_message
        elif status == E.RUN_STATUS_CANCELLED:
            run.cancelled_at = now
        elif status in (E.RUN_STATUS_COMPLETED, E.RUN_STATUS_INCOMPLETE):
            run.completed_at = now
        if outcome.incomplete_reason:
            run.incomplete_details.reason = outcome.incomplete_reason
        self._emit(channel, _STATUS_EVENT[status], run=run)

    async def _close(self, channel: RunChannel, run: run_pb2.Run) -> None:
        """Ends the stream segment with `done`, frees the thread if the run ended, forgets the live run."""
        try:
            if run.status not in TERMINAL and run.status != E.RUN_STATUS_REQUIRES_ACTION and not self._stopping:
                # Recording the end went wrong itself: still never leave the run in progress.
                run.status = E.RUN_STATUS_FAILED
                run.failed_at = ids.now()
                run.last_error.code, run.last_error.message = "server_error", SERVER_ERROR
                self._emit(channel, E.RUN_EVENT_TYPE_THREAD_RUN_FAILED, run=run)
            done = self._emit(channel, DONE, release_thread=run.status in TERMINAL)
            await channel.committed(done)
        finally:
            self._forget(channel, run)

    def _forget(self, channel: RunChannel, run: run_pb2.Run) -> None:
        """Closes the channel and drops the live run of this process."""
        channel.close()
        if self._channels.get(run.id) is channel:
            self._channels.pop(run.id, None)
            self._runs.pop(run.id, None)
            self._tasks.pop(run.id, None)
        if run.status in TERMINAL:
            self._tokens.pop(run.id, None)
        self._cancel_requested.discard(run.id)

    def _emit(self, channel: RunChannel, event_type: int, release_thread: bool = False, **payload) -> int:
        event = run_pb2.RunEvent(event=event_type)
        for name, obj in payload.items():
            getattr(event, name).CopyFrom(obj)
        return self._events.append(channel, event, release_thread)

    async def _turn_from_store(self, tenant: str, run: run_pb2.Run) -> _Turn:
        """The unfinished steps (and message) of a run with no task, as a turn to conclude."""
        turn = _Turn()
        for step in await self._repo.all(tenant, run_pb2.RunStep, run.id):
            if step.status != E.RUN_STEP_STATUS_IN_PROGRESS:
                continue
            if step.type == E.RUN_STEP_TYPE_TOOL_CALLS:
                turn.tool_step = step
            else:
                turn.message_step = step
                turn.message = await self._repo.get(
                    tenant, message_pb2.Message, step.step_details.message_creation.message_id, run.thread_id
                )
                turn.text = "".join(p.text.value for p in turn.message.content) if turn.message else ""
                if turn.message is not None:
                    del turn.message.content[:]
        return turn

    # ---- recovery and shutdown -----------------------------------------------------------

    async def start_monitor(self) -> None:
        """Keeps this process's heartbeat, and every so often ends the runs of owners that stopped."""
        await self._store.heartbeat(self.owner, self._lease_seconds)
        self._monitor = asyncio.create_task(self._monitor_loop(), name="run-lease-monitor")

    async def _monitor_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(CANCEL_POLL_SECONDS, self._lease_seconds / 3)
        last_beat = last_sweep = loop.time()
        while True:
            await asyncio.sleep(tick)
            if loop.time() - last_sweep >= self._lease_seconds / 3:
                last_sweep = loop.time()
                try:
                    await self._store.heartbeat(self.owner, self._lease_seconds)
                    last_beat = loop.time()
                except Exception:
                    log.exception("heartbeat failed")
                if self._store.shared and loop.time() - last_beat > self._lease_seconds * 2 / 3 and self._tasks:
                    self._fence()
                try:
                    await self.sweep()
                except Exception:  # the store is unreachable for now: try again next round
                    log.exception("sweeping runs of stopped owners failed")
            if self._store.shared and self._runs:
                try:
                    await self._serve_cancel_requests()
                except Exception:
                    log.exception("reading cancel requests failed")

    def _fence(self) -> None:
        """Our heartbeat could not be renewed: another replica may take our runs over any moment,
        so stop them here without writing anything more (the taker ends them)."""
        log.error("run lease not renewed for too long: stopping this process's %d run(s)", len(self._tasks))
        for run_id, task in list(self._tasks.items()):
            task.cancel()
            channel, run = self._channels.get(run_id), self._runs.get(run_id)
            if channel is not None and run is not None:
                self._forget(channel, run)

    async def _serve_cancel_requests(self) -> None:
        """Cancels the runs of this process that a client asked another replica to cancel."""
        for tenant, thread_id, run_id in await self._store.cancel_requests(self.owner):
            if run_id in self._runs:
                try:
                    await self.cancel(tenant, thread_id, run_id)
                except FailedPrecondition:
                    pass  # it ended meanwhile
            await self._store.clear_cancel_request(self.owner, tenant, run_id)

    async def sweep(self) -> int:
        """Ends the runs whose owner stopped (a crash, a lost lease): they fail with server_error,
        a run that was cancelling ends cancelled. Runs waiting for tool outputs get this process as
        their owner, and their expiry. Returns how many runs were ended."""
        alive = (await self._store.live_owners() if self._store.shared else set()) | {self.owner}
        ended = 0
        for tenant, thread_id, run_id, owner in await self._store.active_runs():
            if owner.split("/", 1)[0] in alive or run_id in self._runs:
                continue
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            if run is None:
                await self._store.release_thread(tenant, thread_id, run_id)
                continue
            waiting = run.status == E.RUN_STATUS_REQUIRES_ACTION
            if not await self._store.take_over(tenant, thread_id, run_id, self._new_token(run_id, waiting), old_owner=owner):
                continue  # another process was quicker
            if waiting:
                self._schedule_expiry(tenant, run)
                continue
            async with self._lock(run_id):
                if run.status in TERMINAL:  # stopped between recording the end and `done`
                    await self._close(self._open(tenant, run, await self._store.last_sequence(tenant, run_id) + 1), run)
                    continue
                cut_off = (
                    _Outcome(E.RUN_STATUS_CANCELLED)
                    if run.status == E.RUN_STATUS_CANCELLING
                    else _Outcome(E.RUN_STATUS_FAILED, "server_error", RESTART_ERROR)
                )
                await self._end_waiting_run(tenant, run, cut_off)
            ended += 1
        return ended

    async def shutdown(self) -> None:
        """Stops the runs of this process; whoever sweeps next ends them (see sweep)."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        for timer in self._expiry_timers.values():
            timer.cancel()
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _call_key(turn: _Turn, fragment: ToolCallFragment) -> tuple:
    """Which call a fragment belongs to: the provider's index and the call id last named there, so
    a provider that streams whole parallel calls at one index still gets separate calls."""
    if fragment.id:
        turn.provider_ids[fragment.index] = fragment.id
    return (fragment.index, turn.provider_ids.get(fragment.index))


def _usage(turn: _Turn) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=turn.prompt_tokens,
        completion_tokens=turn.completion_tokens,
        total_tokens=turn.prompt_tokens + turn.completion_tokens,
    )


def _add_usage(run: run_pb2.Run, turn: _Turn) -> None:
    run.usage.prompt_tokens += turn.prompt_tokens
    run.usage.completion_tokens += turn.completion_tokens
    run.usage.total_tokens = run.usage.prompt_tokens + run.usage.completion_tokens


def without_result_content(step: run_pb2.RunStep) -> run_pb2.RunStep:
    """The step with its file_search results' contents left out (they are shown only on request)."""
    bare = run_pb2.RunStep()
    bare.CopyFrom(step)
    for call in bare.step_details.tool_calls:
        for result in call.file_search.results:
            del result.content[:]
    return bare


def _copy(run: run_pb2.Run) -> run_pb2.Run:
    snapshot = run_pb2.Run()
    snapshot.CopyFrom(run)
    return snapshot


def _check_outputs(run: run_pb2.Run, outputs) -> dict[str, str]:
    """{call id: output} when outputs answer each pending call exactly once; else InvalidArgument."""
    pending = [call.id for call in run.required_action.submit_tool_outputs.tool_calls]
    if not outputs:
        raise missing("tool_outputs")
    by_id: dict[str, str] = {}
    for i, output in enumerate(outputs):
        param = f"tool_outputs[{i}].tool_call_id"
        if not output.tool_call_id:
            raise missing(param)
        if output.tool_call_id not in pending:
            raise InvalidArgument(
                f"Invalid '{param}': no pending tool call has id '{output.tool_call_id}'.", param=param, code="invalid_value"
            )
        if output.tool_call_id in by_id:
            raise InvalidArgument(f"Duplicate tool_call_id '{output.tool_call_id}' in 'tool_outputs'.", param=param)
        by_id[output.tool_call_id] = output.output
    missing_ids = [call_id for call_id in pending if call_id not in by_id]
    if missing_ids:
        raise InvalidArgument(
            f"Expected tool outputs for call_ids {pending}, got {list(by_id)}.", param="tool_outputs", code="invalid_value"
        )
    return by_id
