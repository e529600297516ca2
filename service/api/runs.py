"""RunService: creating, streaming, watching, cancelling and reading runs and their steps."""

import asyncio

from assistd.v1 import assistant_pb2, run_pb2, run_service_pb2, run_service_pb2_grpc, thread_pb2

from service import ids
from service.api.common import list_query, page, streaming, unary
from service.api.threads import new_message, new_thread, thread_files
from service.engine.events import DONE
from service.engine.file_search import without_result_content
from service.engine.lifecycle import TERMINAL
from service.errors import missing, not_found
from service.repo import kind_of
from service.retrieval.attachments import attach
from service.validation import check_metadata, check_run


def _step_view(include):
    """How steps are shown: file_search result contents only when include[] asks for them
    (its values are checked with every request, in service/validation.py)."""
    return (lambda step: step) if include else without_result_content


def _new_run(request, assistant: assistant_pb2.Assistant, thread_id: str, expiry_seconds: int) -> run_pb2.Run:
    """The run a create request asks for, with the assistant's settings where it is silent."""
    now = ids.now()
    run = run_pb2.Run(
        id=ids.new_id("run_"),
        object="thread.run",
        created_at=now,
        thread_id=thread_id,
        assistant_id=assistant.id,
        status=run_pb2.RUN_STATUS_QUEUED,
        expires_at=now + expiry_seconds,
        model=request.model if request.HasField("model") else assistant.model,
        instructions=request.instructions if request.HasField("instructions") else assistant.instructions,
        tools=request.tools.items if request.HasField("tools") else assistant.tools,
        metadata=request.metadata,
        parallel_tool_calls=request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True,
    )
    if getattr(request, "additional_instructions", ""):
        run.instructions = "\n\n".join(filter(None, [run.instructions, request.additional_instructions]))
    for field in ("temperature", "top_p", "reasoning_effort"):
        if request.HasField(field):
            setattr(run, field, getattr(request, field))
        elif assistant.HasField(field):
            setattr(run, field, getattr(assistant, field))
    for field in ("max_prompt_tokens", "max_completion_tokens"):
        if request.HasField(field):
            setattr(run, field, getattr(request, field))
    if request.HasField("response_format"):
        run.response_format.CopyFrom(request.response_format)
    elif assistant.HasField("response_format"):
        run.response_format.CopyFrom(assistant.response_format)
    else:
        run.response_format.auto.SetInParent()
    if request.HasField("truncation_strategy"):
        run.truncation_strategy.CopyFrom(request.truncation_strategy)
    else:
        run.truncation_strategy.type = run_pb2.TRUNCATION_STRATEGY_TYPE_AUTO
    if request.HasField("tool_choice"):
        run.tool_choice.CopyFrom(request.tool_choice)
    else:
        run.tool_choice.auto.SetInParent()
    return run


class RunService(run_service_pb2_grpc.RunServiceServicer):
    def __init__(self, auth, repo, engine, settings, ingestor):
        self.auth = auth
        self.repo = repo
        self.engine = engine
        self.settings = settings
        self.ingestor = ingestor

    async def _store_files(self, tenant, objects, to_ingest) -> None:
        if objects:
            await self.repo.put(tenant, *objects)
        self.ingestor.submit_all(tenant, to_ingest)

    async def _start_run(self, tenant, request):
        """Validates a CreateRunRequest whole, then starts the run."""
        check_run(request)
        await self.engine.admit(tenant)  # before anything is written: a refused run leaves no trace
        thread, assistant = await self.repo.require_many(
            tenant, (thread_pb2.Thread, request.thread_id, ""), (assistant_pb2.Assistant, request.assistant_id, "")
        )
        messages = [
            new_message(request.thread_id, m, f"additional_messages[{i}]")
            for i, m in enumerate(request.additional_messages)
        ]
        run = _new_run(request, assistant, request.thread_id, self.settings.run_expiry_seconds)
        objects, to_ingest = await attach(self.repo, tenant, thread, messages)
        # Stored only once the thread is ours: a run refused as busy leaves no store, no queued ingestion.
        # (With none, the run's first write goes with its claim, in one store trip.)
        claimed = (lambda: self._store_files(tenant, objects, to_ingest)) if objects or to_ingest else None
        return await self.engine.start(tenant, run, messages, claimed=claimed)

    async def _start_thread_and_run(self, tenant, request):
        check_run(request)
        await self.engine.admit(tenant)
        thread, messages = new_thread(request.thread)
        if request.HasField("tool_resources"):
            thread.tool_resources.CopyFrom(request.tool_resources)
        assistant = await self.repo.require(tenant, assistant_pb2.Assistant, request.assistant_id)
        run = _new_run(request, assistant, thread.id, self.settings.run_expiry_seconds)
        await self._store_files(tenant, *await thread_files(self.repo, tenant, thread, messages))
        return await self.engine.start(tenant, run, messages, new_thread=thread)  # stores the thread

    @unary
    async def CreateRun(self, tenant, request, context):
        started = await self._start_run(tenant, request)
        return run_service_pb2.CreateRunResponse(run=started.run)

    @streaming
    async def CreateRunStream(self, tenant, request, context):
        started = await self._start_run(tenant, request)
        async for event in self.engine.follow(tenant, started.run.thread_id, started.run.id, 0):
            yield event

    @unary
    async def CreateThreadAndRun(self, tenant, request, context):
        started = await self._start_thread_and_run(tenant, request)
        return run_service_pb2.CreateThreadAndRunResponse(run=started.run)

    @streaming
    async def CreateThreadAndRunStream(self, tenant, request, context):
        started = await self._start_thread_and_run(tenant, request)
        async for event in self.engine.follow(tenant, started.run.thread_id, started.run.id, 0):
            yield event

    async def _thread_of(self, tenant: str, run_id: str, thread_id: str) -> str:
        """The thread a run is on, found by the run's id alone (and checked against thread_id when
        one is given). Raises NotFound."""
        threads = await self.repo.store.parents_of(tenant, kind_of(run_pb2.Run), run_id)
        if not threads or (thread_id and thread_id not in threads):
            raise not_found("run", run_id)
        return thread_id or threads[0]

    @streaming
    async def WatchRun(self, tenant, request, context):
        """Follows the run to its end: the engine's watch ends at each segment's `done`, and the
        next one starts after it, until the run has ended and its log is read to the end."""
        if not request.run_id:
            raise missing("run_id")
        run_id = request.run_id
        thread_id = await self._thread_of(tenant, run_id, request.thread_id)
        after = request.after_sequence
        while True:
            ended_segment = False
            async for event in self.engine.watch(tenant, thread_id, run_id, after):
                yield event
                after = event.sequence_number
                ended_segment = event.event == DONE
            run = await self.repo.require(tenant, run_pb2.Run, run_id, thread_id)
            if run.status in TERMINAL and await self.repo.store.last_sequence(tenant, run_id) <= after:
                return
            if not ended_segment:  # the live stream was cut (its events could not be stored): read the log again
                await asyncio.sleep(0.1)

    @unary
    async def GetRun(self, tenant, request, context):
        run = await self.repo.require(tenant, run_pb2.Run, request.run_id, request.thread_id)
        return run_service_pb2.GetRunResponse(run=run)

    @unary
    async def ListRuns(self, tenant, request, context):
        query = list_query(request)
        await self.repo.require(tenant, thread_pb2.Thread, request.thread_id)
        items, has_more = await self.repo.list_page(tenant, run_pb2.Run, request.thread_id, query)
        return page(run_service_pb2.ListRunsResponse(), items, has_more)

    @unary
    async def UpdateRun(self, tenant, request, context):
        check_metadata(request.run.metadata)
        if "metadata" not in request.update_mask.paths:
            run = await self.repo.require(tenant, run_pb2.Run, request.run_id, request.thread_id)
            return run_service_pb2.UpdateRunResponse(run=run)
        metadata = dict(request.run.metadata)
        run = await self.engine.update_metadata(tenant, request.thread_id, request.run_id, metadata)
        return run_service_pb2.UpdateRunResponse(run=run)

    @unary
    async def CancelRun(self, tenant, request, context):
        run = await self.engine.cancel(tenant, request.thread_id, request.run_id)
        return run_service_pb2.CancelRunResponse(run=run)

    async def _submit(self, tenant, request):
        return await self.engine.submit_tool_outputs(
            tenant, request.thread_id, request.run_id, list(request.tool_outputs)
        )

    @unary
    async def SubmitToolOutputs(self, tenant, request, context):
        started = await self._submit(tenant, request)
        return run_service_pb2.SubmitToolOutputsResponse(run=started.run)

    @streaming
    async def SubmitToolOutputsStream(self, tenant, request, context):
        started = await self._submit(tenant, request)
        after = started.channel.first_sequence - 1
        async for event in self.engine.follow(tenant, started.run.thread_id, started.run.id, after):
            yield event

    @unary
    async def GetRunStep(self, tenant, request, context):
        shown = _step_view(request.include)
        await self.repo.require(tenant, run_pb2.Run, request.run_id, request.thread_id)
        step = await self.repo.require(tenant, run_pb2.RunStep, request.step_id, request.run_id)
        return run_service_pb2.GetRunStepResponse(step=shown(step))

    @unary
    async def ListRunSteps(self, tenant, request, context):
        shown = _step_view(request.include)
        query = list_query(request)
        await self.repo.require(tenant, run_pb2.Run, request.run_id, request.thread_id)
        items, has_more = await self.repo.list_page(tenant, run_pb2.RunStep, request.run_id, query)
        return page(run_service_pb2.ListRunStepsResponse(), [shown(step) for step in items], has_more)
