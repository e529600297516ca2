"""One segment of a run: from queued until it ends or needs the client (tool outputs).

A segment reads the run's thread, messages and steps once, then calls the model turn after turn,
keeping what the turns write in memory, so the next prompt is built without going back to the
store. file_search and code_interpreter calls are answered here and the model called again;
function calls end the segment in requires_action. The segment decides how it ended; the runner records that end.
"""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar, cast

from assistd.v1 import message_pb2, run_pb2, thread_pb2
from google.protobuf.message import Message as ProtoMessage

from service import ids
from service.credentials import TenantCredentials
from service.engine import code_interpreter, context_fit, file_search, lifecycle
from service.engine.code_interpreter import CodeInterpreter
from service.engine.events import EventLog, RunChannel
from service.engine.file_search import FileSearch, cite
from service.engine.history import DecodedMessages
from service.engine.lifecycle import Outcome
from service.engine.prompt import build_messages, chat_request
from service.engine.turn import Turn
from service.llm import Provider
from service.repo import Repo

T = TypeVar("T")


def begins_at_once(run: run_pb2.Run) -> bool:
    """Whether a new run has nothing to wait for before its first model call (no files to be
    ingested for file_search, no code_interpreter session to prepare): then it is in_progress
    from its first commit on, and a segment need not write that separately."""
    return file_search.settings_of(run) is None and not code_interpreter.enabled(run)


class Segment:
    def __init__(
        self,
        tenant: str,
        run: run_pb2.Run,
        channel: RunChannel,
        *,
        events: EventLog,
        repo: Repo,
        provider: Provider,
        credentials: TenantCredentials | None = None,
        file_search: FileSearch,
        code: CodeInterpreter | None = None,
        tool_prompt_models: frozenset[str] = frozenset(),
        decoded: DecodedMessages | None = None,
        begun: bool = False,
    ):
        self._tenant = tenant
        self._run = run
        self._channel = channel
        self._events = events
        self._repo = repo
        self._provider = provider
        self._credentials = credentials  # the tenant's own provider keys, set on each model request
        self._file_search = file_search
        self._code = code
        self._tool_prompt_models = tool_prompt_models
        self._decoded = decoded if decoded is not None else DecodedMessages(max_bytes=0)  # none: keep none
        self.turn = Turn(run, self.emit)  # the turn in progress (or the last one): what an end closes
        self._begun = begun  # the run went in_progress with its first commit (begins_at_once)
        self.stop_requested = False
        self._waiting_on: asyncio.Task | None = None

    def emit(self, event_type: run_pb2.RunEventType, obj: ProtoMessage) -> int:
        return self._events.emit(self._channel, event_type, obj)

    def interrupt(self) -> None:
        """Stops the segment (a cancel): the model call or wait in flight is cancelled."""
        self.stop_requested = True
        if self._waiting_on is not None:
            self._waiting_on.cancel()

    async def _interruptible(self, work: Awaitable[T]) -> T:
        """Awaits work as its own task, so that interrupt() cancels it and not the segment."""
        self._waiting_on = asyncio.ensure_future(work)
        try:
            return await self._waiting_on
        finally:
            self._waiting_on = None

    async def run(self) -> Outcome:
        """Runs the segment; returns how it ended. Raises ProviderError, or CancelledError when
        interrupted in a model call."""
        run, tenant = self._run, self._tenant
        await self._channel.committed(self._channel.next_sequence - 1)  # read our own writes (tool outputs)
        # in one store trip; steps also for a first segment (Responses history)
        (found,), listed = await self._repo.read(
            tenant,
            [(thread_pb2.Thread, run.thread_id, "")],
            [(message_pb2.Message, run.thread_id, self._decoded.decode), (run_pb2.RunStep, run.id, None)],
        )
        thread = cast(thread_pb2.Thread | None, found)
        messages = cast(list[message_pb2.Message], listed[0])
        steps = cast(list[run_pb2.RunStep], listed[1])
        # A run stays queued while the files it searches are ingested.
        vector_store_ids = await self._interruptible(self._file_search.vector_stores(tenant, run, thread))
        coding = self._code is not None and await self._interruptible(self._code.prepare(tenant, run, thread, messages))
        if self.stop_requested:
            return lifecycle.CANCELLED
        if not self._begun:
            self._events.apply(self._channel, lifecycle.begin(run, ids.now()))
        images: list[str] = []  # images code made, for the next message
        while True:
            left = lifecycle.built_in_calls_left(run, steps)  # max_tool_calls: once spent, no more offered
            searching, coding_now = bool(vector_store_ids) and left != 0, coding and left != 0
            turn = self.turn = Turn(
                run, self.emit, searching=searching, coding=coding_now, images=images, built_in_calls_left=left
            )
            if self.stop_requested:
                return lifecycle.CANCELLED
            used = run.usage.completion_tokens
            if run.HasField("max_completion_tokens") and used >= run.max_completion_tokens:
                return lifecycle.incomplete("max_completion_tokens")
            chat = build_messages(run, messages, steps, self._decoded.entry)
            if run.truncation_strategy.type == run_pb2.TRUNCATION_STRATEGY_TYPE_AUTO:
                chat = await context_fit.fit(chat, lambda: self._provider.context_window(run.model))
            if run.HasField("max_prompt_tokens"):
                prompt_tokens = await self._provider.count_tokens(run.model, chat)
                if run.usage.prompt_tokens + prompt_tokens > run.max_prompt_tokens:
                    return lifecycle.incomplete("max_prompt_tokens")
            if self.stop_requested:
                return lifecycle.CANCELLED
            request, parser = chat_request(run, chat, searching, self._tool_prompt_models, coding_now)
            if self._credentials is not None:
                request.credentials = await self._credentials.for_tenant(self._tenant) or None
            await self._interruptible(turn.read(self._provider.stream(request), parser))
            messages += [turn.message] if turn.message is not None else []
            images = [] if turn.message is not None else images
            steps += turn.steps()
            if turn.search_args:
                steps.append(await self._file_search.run_calls(tenant, run, turn, vector_store_ids, self.emit))
                if turn.tool_step is None:  # only searches: let the model read the results
                    continue
            if turn.finish_reason == "length" and run.HasField("max_completion_tokens"):
                return lifecycle.incomplete("max_completion_tokens")  # calls may be cut off too
            if turn.code_args and self._code is not None:
                turn.settle_message()
                images = images + await self._interruptible(self._code.run_calls(tenant, run, turn, self.emit))
                if not turn.has_function_calls():  # only code: let the model read its output
                    code_interpreter.complete_step(run, turn, self.emit)
                    continue
            if turn.tool_step is not None:
                return lifecycle.REQUIRES_ACTION
            turn.start_message()  # an empty answer is still a message
            if vector_store_ids:
                cite(turn, steps)
            if coding and self._code is not None:
                await self._interruptible(self._code.link_files(tenant, run, turn))
            return lifecycle.COMPLETED
