"""The run engine's facade: start, submit, cancel, expire, watch and sweep runs.

A run is a background task owned by the service, not by a client: clients follow its channel,
and a disconnect stops their reading only. A run goes in segments (segment.py): a segment ends
the run, or leaves it in requires_action until tool outputs start the next one. What each state
change does is lifecycle.py's; every event goes to the run's log (events.py) before anyone sees it.

State changes that can race (cancel, submit, expiry, a segment's end) happen under the run's
lock, and between processes through ownership tokens (ownership.py). Cancelling interrupts the
segment's model call, never the task that records the run's end.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from assistd.v1 import message_pb2, run_pb2, thread_pb2

from service import ids, tracing
from service.credentials import TenantCredentials
from service.engine import lifecycle
from service.engine.code_interpreter import CodeInterpreter
from service.engine.events import EventLog, RunChannel
from service.engine.expiry import ExpiryTimers
from service.engine.file_search import FileSearch
from service.engine.history import DecodedMessages
from service.engine.lifecycle import TERMINAL, Outcome, status_name
from service.engine.live import LiveRun, LiveRuns, Started, snapshot
from service.engine.ownership import Monitor, Ownership
from service.engine.segment import Segment, begins_at_once
from service.engine.unfinished import last_turn, open_steps
from service.errors import FailedPrecondition, ThreadBusy, not_found
from service.limits import RunLimit
from service.llm import Provider, ProviderError
from service.locks import KeyedLocks
from service.repo import Repo, record
from service.retrieval.embed import Embedder
from service.store import DELETED_THREAD, Store

log = logging.getLogger(__name__)
E = run_pb2


class RunEngine:
    def __init__(
        self,
        store: Store,
        repo: Repo,
        provider: Provider,
        events: EventLog,
        *,
        expiry_seconds: int = 600,
        tool_prompt_models: frozenset[str] = frozenset(),
        embedder: Embedder | None = None,
        lease_seconds: int = 15,
        code: CodeInterpreter | None = None,
        max_active_runs: int = 0,
        credentials: TenantCredentials | None = None,
    ):
        self._store = store
        self._repo = repo
        self._provider = provider
        self._events = events
        self._expiry_seconds = expiry_seconds
        self._tool_prompt_models = tool_prompt_models
        self._decoded = DecodedMessages()  # the threads' messages this process read lately, decoded
        self._file_search = FileSearch(repo, embedder)
        self._code = code
        self._ownership = Ownership(store, lease_seconds)
        self._monitor = Monitor(self._ownership, store, self)
        self._live = LiveRuns()
        self._locks = KeyedLocks()
        self._expiry = ExpiryTimers(self._expire, expiry_seconds)
        self._stopping = False
        self._run_limit = RunLimit(store, max_active_runs)
        self._credentials = credentials

    def _open(self, tenant: str, run: run_pb2.Run, first_sequence: int) -> LiveRun:
        return self._live.open(tenant, run, first_sequence)

    async def _reopen(self, tenant: str, run: run_pb2.Run) -> LiveRun:
        """A live run for a run that has events already: its log goes on where it stopped."""
        return self._open(tenant, run, await self._store.last_sequence(tenant, run.id) + 1)

    def _launch(self, live: LiveRun, begun: bool = False) -> None:
        live.segment = Segment(
            live.tenant,
            live.run,
            live.channel,
            events=self._events,
            repo=self._repo,
            provider=self._provider,
            credentials=self._credentials,
            file_search=self._file_search,
            code=self._code,
            tool_prompt_models=self._tool_prompt_models,
            decoded=self._decoded,
            begun=begun,
        )
        live.task = asyncio.create_task(self._execute(live), name=f"run {live.run.id}")

    # ---- starting, resuming and following runs -----------------------------------------

    async def admit(self, tenant: str) -> None:
        """Raises RateLimitExceeded when tenant may not start another run now (its limit of
        working runs). Callers check before they write anything for the run."""
        await self._run_limit.admit(tenant)

    async def start(
        self,
        tenant: str,
        run: run_pb2.Run,
        new_messages: Sequence[message_pb2.Message],
        new_thread: thread_pb2.Thread | None = None,
        claimed: Callable[[], Awaitable[None]] | None = None,
    ) -> Started:
        """Claims the thread, stores the run's inputs, and starts it in the background.

        Returns once the run is committed as queued, so it can be read at once. Raises
        FailedPrecondition if the thread already has an active run. `claimed` (the caller's
        own writes, e.g. the attachments' vector store) runs once the claim holds, so a refused
        run has written nothing. Once begun, the start completes even if the caller goes away,
        so a claim never outlives a run that never was.
        """
        return await asyncio.shield(self._start(tenant, run, list(new_messages), new_thread, claimed))

    async def _start(self, tenant, run, new_messages, new_thread, claimed=None) -> Started:
        # The run's first events (created, queued, and in_progress when nothing holds it queued),
        # with the thread and messages it brings, are committed with the claim in one store trip;
        # with `claimed`, the claim goes first alone.
        channel = RunChannel(tenant, run.thread_id, run.id)
        brought = [new_thread, *new_messages] if new_thread is not None else new_messages
        entries, events = self._events.first_entries(
            channel, lifecycle.created(run, new_thread), [record(obj) for obj in brought]
        )
        as_queued = snapshot(run)
        begun = begins_at_once(run)
        if begun:
            more, more_events = self._events.first_entries(channel, lifecycle.begin(run, ids.now()))
            entries, events = entries + more, events + more_events
        active = await self._ownership.claim(tenant, run.thread_id, run.id, entries if claimed is None else None)
        if active == DELETED_THREAD:
            raise not_found("thread", run.thread_id)
        if active is not None:
            raise ThreadBusy(f"Thread {run.thread_id} already has an active run {active}.")
        if claimed is not None:
            try:
                await claimed()
                await self._store.commit(entries)
            except BaseException:
                await self._store.release_thread(tenant, run.thread_id, run.id)
                self._ownership.forget(run.id)
                raise
        live = self._live.open(tenant, run, 1, channel)
        self._events.committed_first(channel, events)
        self._launch(live, begun)
        return Started(live.channel, as_queued)

    async def submit_tool_outputs(
        self, tenant: str, thread_id: str, run_id: str, outputs: Sequence[run_pb2.ToolOutput]
    ) -> Started:
        """Records the outputs on the run's tool_calls step and resumes the run.

        Raises FailedPrecondition unless the run waits for tool outputs, InvalidArgument
        unless `outputs` answers each pending call exactly once. Nothing changes on error; once
        begun, a submit completes even if the caller goes away.
        """
        return await asyncio.shield(self._submit(tenant, thread_id, run_id, outputs))

    async def _submit(self, tenant, thread_id, run_id, outputs) -> Started:
        async with self._locks[run_id]:
            run = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
            if run.status != E.RUN_STATUS_REQUIRES_ACTION or run_id in self._live:
                raise FailedPrecondition(f'Runs in status "{status_name(run.status)}" do not accept tool outputs.')
            by_id = lifecycle.outputs_by_call(run, outputs)
            step = next(
                (s for s in await open_steps(self._repo, tenant, run) if s.type == E.RUN_STEP_TYPE_TOOL_CALLS), None
            )
            if step is None:
                raise FailedPrecondition(f"Run {run_id} has no tool calls waiting for outputs.")
            if not await self._ownership.take_waiting(tenant, thread_id, run_id):
                raise FailedPrecondition(f"Run {run_id} is being resumed already.")
            self._expiry.cancel(run_id)
            live = await self._reopen(tenant, run)
            queued = self._events.apply(live.channel, lifecycle.accept_tool_outputs(run, step, by_id, ids.now()))
            as_queued = snapshot(run)
            self._launch(live)
        await live.channel.committed(queued)
        return Started(live.channel, as_queued)

    async def watch(self, tenant: str, thread_id: str, run_id: str, after: int) -> AsyncIterator[run_pb2.RunEvent]:
        """The run's events after `after`, replayed from the log and then live, up to the next `done`.
        Raises NotFound for an unknown run."""
        await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
        async for event in self.follow(tenant, thread_id, run_id, after):
            yield event

    def follow(self, tenant: str, thread_id: str, run_id: str, after: int) -> AsyncIterator[run_pb2.RunEvent]:
        """`watch` for a run known to exist."""

        def channel() -> RunChannel | None:
            live = self._live.find(tenant, thread_id, run_id)
            return live.channel if live is not None else None

        async def ended() -> bool:
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            return run is None or run.status in TERMINAL

        return self._events.follow(tenant, run_id, after, channel, ended)

    async def update_metadata(self, tenant: str, thread_id: str, run_id: str, metadata: dict[str, str]) -> run_pb2.Run:
        """Replaces a run's metadata under the run's lock, so no state change of the run is lost
        to it: a live run's change is written in order with its events."""
        async with self._locks[run_id]:
            live = self._live.find(tenant, thread_id, run_id)
            run = live.run if live is not None else await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
            run.metadata.clear()
            run.metadata.update(metadata)
            if live is not None:
                await self._events.snapshot(live.channel, run)
            else:
                await self._repo.put(tenant, run)
            return snapshot(run)

    # ---- cancelling and expiring ---------------------------------------------------------

    async def cancel(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        """Cancels a run that has not ended. A working run goes `cancelling`, its model call is
        stopped, and it ends `cancelled`; a run waiting for tool outputs is cancelled at once.
        Once begun, a cancel completes even if the caller goes away."""
        return await asyncio.shield(self._cancel(tenant, thread_id, run_id))

    async def _cancel(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        async with self._locks[run_id]:
            live = self._live.find(tenant, thread_id, run_id)
            if live is None:
                return await self._cancel_elsewhere(tenant, thread_id, run_id)
            cancelling = self._events.apply(live.channel, lifecycle.cancelling(live.run))
            live.cancel_requested = True
            if live.segment is not None:
                live.segment.interrupt()
            cancelling_run = snapshot(live.run)
        await live.channel.committed(cancelling)
        return cancelling_run

    async def _cancel_elsewhere(self, tenant: str, thread_id: str, run_id: str) -> run_pb2.Run:
        """Cancels a run with no task here: one that waits for tool outputs ends at once; one that
        another replica runs is passed to that replica. Caller holds the run's lock."""
        run = await self._repo.require(tenant, run_pb2.Run, run_id, thread_id)
        token = await self._ownership.current(tenant, thread_id, run_id)
        if token is not None and self._store.shared and run.status in (E.RUN_STATUS_QUEUED, E.RUN_STATUS_IN_PROGRESS):
            await self._ownership.request_cancel(token, tenant, thread_id, run_id)
            run.status = E.RUN_STATUS_CANCELLING
            return run
        if token is None or run.status != E.RUN_STATUS_REQUIRES_ACTION:
            raise FailedPrecondition(f"Cannot cancel run with status '{status_name(run.status)}'.")
        if not await self._ownership.take_waiting(tenant, thread_id, run_id):
            raise FailedPrecondition(f"Run {run_id} is being resumed; cancel it again in a moment.")
        return await self._end_idle_run(tenant, run, lifecycle.CANCELLED)

    async def _end_idle_run(self, tenant: str, run: run_pb2.Run, outcome: Outcome) -> run_pb2.Run:
        """Ends a run with no task (waiting for tool outputs, or left by a stopped process) with
        the outcome. Caller holds the run's lock and its ownership."""
        self._expiry.cancel(run.id)
        turn = await last_turn(self._repo, self._store, tenant, run)
        live = await self._reopen(tenant, run)
        self._events.apply(live.channel, lifecycle.conclude(run, turn, outcome, ids.now(), self._expiry_seconds))
        ended = snapshot(run)
        await self._close(live)
        return ended

    async def _expire(self, tenant: str, thread_id: str, run_id: str) -> None:
        async with self._locks[run_id]:
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            if run is None or run.status != E.RUN_STATUS_REQUIRES_ACTION or run_id in self._live:
                return
            if run.expires_at > ids.now():  # resumed and waiting again since this timer was set
                self._expiry.schedule(tenant, run)
            elif await self._ownership.take_waiting(tenant, thread_id, run_id):
                await self._end_idle_run(tenant, run, lifecycle.EXPIRED)

    # ---- executing ------------------------------------------------------------------------

    async def _execute(self, live: LiveRun) -> None:
        """Runs a segment and records how it ended."""
        run, segment = live.run, live.segment
        assert segment is not None
        try:
            with tracing.span(
                "run segment", **{"assistd.run_id": run.id, "assistd.thread_id": run.thread_id}
            ) as traced:
                outcome = await segment.run()
                tracing.set_attributes(traced, **{"assistd.outcome": status_name(outcome.status)})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the service is stopping: whoever sweeps next fails the run
            outcome = lifecycle.CANCELLED
        except ProviderError as exc:
            log.info("run %s failed: %s: %s", run.id, exc.code, exc.message)
            outcome = lifecycle.failed(exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run.id)
            outcome = lifecycle.failed("server_error", lifecycle.SERVER_ERROR)
        async with self._locks[run.id]:
            if self._store.shared and not await self._ownership.still_ours(live.tenant, run.thread_id, run.id):
                log.error("run %s: no longer its owner (lease lapsed); dropping its end", run.id)
                self._forget(live)
                return
            if live.cancel_requested:
                outcome = lifecycle.CANCELLED  # cancelled while finishing: cancel wins
            elif live.end_as is not None and outcome is lifecycle.CANCELLED:
                outcome = live.end_as  # interrupted by the drain at shutdown
            if outcome.status == E.RUN_STATUS_REQUIRES_ACTION:
                await self._ownership.mark_waiting(live.tenant, run.thread_id, run.id)
            try:
                self._events.apply(
                    live.channel, lifecycle.conclude(run, segment.turn, outcome, ids.now(), self._expiry_seconds)
                )
                if run.status == E.RUN_STATUS_REQUIRES_ACTION:
                    self._expiry.schedule(live.tenant, run)
            except Exception:
                log.exception("run %s: recording its end failed", run.id)
            await self._close(live)

    async def _close(self, live: LiveRun) -> None:
        """Ends the stream segment with `done`, frees the thread if the run ended, forgets the live run."""
        try:
            if not self._stopping:  # recording the end went wrong itself: still never leave it working
                self._events.apply(live.channel, lifecycle.cut_short(live.run, ids.now()))
            done = self._events.done(live.channel, release_thread=live.run.status in TERMINAL)
            await live.channel.committed(done)
        finally:
            self._forget(live)

    def _forget(self, live: LiveRun) -> None:
        live.channel.close()
        self._live.remove(live)
        if live.run.status in TERMINAL:
            self._ownership.forget(live.run.id)

    # ---- replicas: the monitor's side (ownership.RunHost) ------------------------------

    async def start_monitor(self) -> None:
        """Keeps this process's heartbeat, and every so often ends the runs of owners that stopped."""
        await self._monitor.start()

    def running(self) -> set[str]:
        return self._live.ids()

    def fence(self) -> None:
        """Our heartbeat could not be renewed: another replica may take our runs over any moment,
        so stop them here without writing anything more (the taker ends them)."""
        working = [live for live in self._live if live.task is not None]
        log.error("run lease not renewed for too long: stopping this process's %d run(s)", len(working))
        for live in working:
            assert live.task is not None
            live.task.cancel()
            self._forget(live)
            self._ownership.forget(live.run.id)  # ours no more: a sweep (ours or another's) ends it

    async def cancel_asked(self, tenant: str, thread_id: str, run_id: str) -> None:
        """A cancel another replica passed on for a run of ours."""
        try:
            await self.cancel(tenant, thread_id, run_id)
        except FailedPrecondition:
            pass  # it ended meanwhile

    async def sweep(self) -> int:
        """Ends the runs whose owner stopped (a crash, a lost lease): they fail with server_error,
        a run that was cancelling ends cancelled. Runs waiting for tool outputs get this process as
        their owner, and their expiry. Returns how many runs were ended."""
        ended = 0
        for orphan in await self._ownership.orphans(self.running()):
            tenant, thread_id, run_id = orphan.tenant, orphan.thread_id, orphan.run_id
            run = await self._repo.get(tenant, run_pb2.Run, run_id, thread_id)
            if run is None:
                await self._store.release_thread(tenant, thread_id, run_id)
                continue
            waiting = run.status == E.RUN_STATUS_REQUIRES_ACTION
            if not await self._ownership.take(tenant, thread_id, run_id, orphan.token, waiting=waiting):
                continue  # another process was quicker
            if waiting:
                self._expiry.schedule(tenant, run)
                continue
            async with self._locks[run_id]:
                if run.status in TERMINAL:  # stopped between recording the end and `done`
                    await self._close(await self._reopen(tenant, run))
                    continue
                cut_off = (
                    lifecycle.CANCELLED
                    if run.status == E.RUN_STATUS_CANCELLING
                    else lifecycle.failed("server_error", lifecycle.RESTART_ERROR)
                )
                await self._end_idle_run(tenant, run, cut_off)
            ended += 1
        return ended

    async def thread_deleted(self, tenant: str, thread_id: str) -> None:
        """Closes the thread's code_interpreter session in this process, its files with it (a
        session another replica holds goes when it is idle)."""
        if self._code is not None:
            await self._code.sessions.close(tenant, thread_id)

    async def drain(self, seconds: float) -> int:
        """Lets the runs working here go on for up to `seconds`, then interrupts the rest: they end
        failed with their terminal events and `done` recorded, so their watchers see an end and no
        run waits for the next start. Returns how many were interrupted."""
        return await self._live.drain(seconds)

    async def shutdown(self) -> None:
        """Stops the runs of this process; whoever sweeps next ends them (see sweep)."""
        self._stopping = True
        self._monitor.stop()
        await self._expiry.stop()
        tasks = [live.task for live in self._live if live.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._code is not None:
            await self._code.sessions.close_all()
