"""ResponseService: OpenAI's Responses API on the run engine.

A response is a run on a thread that holds its context. Chained with previous_response_id, it
goes on the previous response's thread when that response is the newest there, or on a new
thread with a copy of the context up to it (a branch). A response that ended with function
calls leaves its run waiting for tool outputs: the next response's function_call_output items
are those outputs, and that response is the run's next segment, so the call ids the client saw
are the ones it answers. Events and the response object are renderings of the run's log
(render.py), so a stream can be resumed, on any replica, by rendering the log again.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from assistd.v1 import (
    assistant_pb2,
    message_pb2,
    response_pb2,
    response_pb2_grpc,
    run_pb2,
    thread_pb2,
    vector_store_pb2,
)
from google.protobuf import json_format, struct_pb2

from service import ids
from service.api.common import streaming, unary
from service.containers import Containers
from service.engine.lifecycle import TERMINAL
from service.engine.prompt import build_messages
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.protojson import struct_to_python
from service.repo import Repo
from service.responses import request as requests
from service.responses.files import add_file_texts
from service.responses.render import (
    CLOSING_EVENTS,
    FINAL_STATUSES,
    Json,
    Renderer,
    function_item_id,
    with_search_results,
)
from service.responses.typed import response_from_json
from service.store import BlobStore, ListQuery

log = logging.getLogger(__name__)


def _struct(value: Json) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def _renderer(record: response_pb2.StoredResponse) -> Renderer:
    return Renderer(struct_to_python(record.base), include=record.include, container_id=record.container_id)


class ResponseService(response_pb2_grpc.ResponseServiceServicer):
    def __init__(self, auth, repo: Repo, engine, provider, containers: Containers, blobs: BlobStore):
        self.auth = auth
        self.repo = repo
        self.blobs = blobs  # the files of input_file parts
        self.engine = engine
        self.provider = provider
        self.containers = containers
        self._discarding: set[asyncio.Future] = set()  # store-false threads being discarded

    # ---- creating ------------------------------------------------------------------------

    async def _stored(self, tenant: str, response_id: str) -> response_pb2.StoredResponse:
        found = await self.repo.get(tenant, response_pb2.StoredResponse, response_id)
        if found is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return found

    async def _create(self, tenant: str, body: Json) -> tuple[response_pb2.StoredResponse, bool]:
        """Starts the response's run; returns its record (stored when the request says so)."""
        request = requests.parse(body)
        await self.engine.admit(tenant)  # before anything is written: a refused response leaves no trace
        await add_file_texts(self.repo, self.blobs, tenant, request)
        if request.prompt_id:
            assistant = await self.repo.get(tenant, assistant_pb2.Assistant, request.prompt_id)
            if assistant is None:
                raise NotFound(f"Prompt with id '{request.prompt_id}' not found.", param="prompt.id")
            requests.use_assistant(request, assistant)
        record = response_pb2.StoredResponse(id=ids.new_id("resp_"), created_at=ids.now())
        record.base.CopyFrom(_struct(requests.base(record.id, record.created_at, request)))
        record.include.extend(body.get("include") or [])
        created_thread = False
        if request.previous_response_id:
            previous = await self.repo.get(tenant, response_pb2.StoredResponse, request.previous_response_id)
            if previous is None:
                raise InvalidArgument(
                    f"Previous response with id '{request.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            run = await self.repo.require(tenant, run_pb2.Run, previous.run_id, previous.thread_id)
            if run.status == run_pb2.RUN_STATUS_REQUIRES_ACTION and not request.calls:
                message_ids = await self._submit(tenant, request, run, record, previous.context_message_id)
            else:
                message_ids, created_thread = await self._follow_on(tenant, request, previous, run, record)
        elif request.conversation:
            message_ids = await self._in_conversation(tenant, request, request.conversation, record)
        else:
            record.thread_id = ids.new_id("thread_")
            thread = thread_pb2.Thread(id=record.thread_id, object="thread", created_at=record.created_at)
            message_ids = await self._start(tenant, request, record, thread, [])
            created_thread = True
        items = iter(message_ids)
        for item in request.items:
            if item["type"] == "message":
                item["id"] = next(items) if item["role"] in ("user", "assistant") else ids.new_id("msg_")
            elif item["type"] == "function_call":
                item["id"] = function_item_id(item["call_id"])
            else:
                item["id"] = ids.new_id("fco_")
            record.input_items.values.add().struct_value.CopyFrom(_struct(item))
        if request.store:
            await self.repo.put(tenant, record)
        return record, created_thread

    async def _start(self, tenant, request, record, thread, copies) -> list[str]:
        """Starts a new run on record.thread_id (on `thread`, made now, when given). The thread
        holds the vector stores the run's file_search tool searches."""
        stores = requests.vector_store_ids(request.body)
        for store_id in stores:
            await self.repo.require(tenant, vector_store_pb2.VectorStore, store_id)
        if thread is None:
            existing = await self.repo.require(tenant, thread_pb2.Thread, record.thread_id)
            if list(existing.tool_resources.file_search.vector_store_ids) != stores:
                del existing.tool_resources.file_search.vector_store_ids[:]
                existing.tool_resources.file_search.vector_store_ids.extend(stores)
                await self.repo.put(tenant, existing)
        else:
            thread.tool_resources.file_search.vector_store_ids.extend(stores)
        run = requests.new_run(request, record.thread_id)
        if any(tool.WhichOneof("kind") == "code_interpreter" for tool in run.tools):
            # a prompt's (assistant's) code_interpreter has no container: the thread's auto one
            spec = requests.code_container(request.body) or {"type": "auto"}
            record.container_id = await self.containers.for_response(tenant, record.thread_id, spec)
            await self.containers.bind(tenant, run.id, record.container_id)
        messages, steps = requests.new_context(request, run)
        if steps:  # function calls given back as history: the run's first steps
            await self.repo.put(tenant, *steps)
        context = copies + messages
        record.run_id = run.id
        record.after_sequence = 0
        record.context_message_id = context[-1].id if context else ""
        await self.engine.start(tenant, run, context, new_thread=thread)
        return [m.id for m in messages]

    async def _in_conversation(self, tenant, request, conversation_id: str, record) -> list[str]:
        """A response in a conversation (a thread): its outputs answer the calls its last
        response ended with, or it is a new run on the thread."""
        if await self.repo.get(tenant, thread_pb2.Thread, conversation_id) is None:
            raise NotFound(f"Conversation with id '{conversation_id}' not found.", param="conversation")
        record.thread_id = conversation_id
        if request.tool_outputs and not request.calls:  # answers to the calls its last response made
            latest, _ = await self.repo.list_page(tenant, run_pb2.Run, conversation_id, ListQuery(limit=1))
            if not latest or latest[0].status != run_pb2.RUN_STATUS_REQUIRES_ACTION:
                call_id = request.tool_outputs[0].tool_call_id
                raise InvalidArgument(
                    f"No tool call found for function call output with call_id {call_id}.",
                    param=request.output_params[0],
                )
            return await self._submit(tenant, request, latest[0], record, "")
        return await self._start(tenant, request, record, None, [])

    async def _submit(self, tenant, request, run, record, context_message_id: str) -> list[str]:
        """A response that ended with function calls left its run waiting: these outputs resume it."""
        pending = [call.id for call in run.required_action.submit_tool_outputs.tool_calls]
        given = {output.tool_call_id for output in request.tool_outputs}
        for output, param in zip(request.tool_outputs, request.output_params, strict=True):
            if output.tool_call_id not in pending:
                raise InvalidArgument(
                    f"No tool call found for function call output with call_id {output.tool_call_id}.", param=param
                )
        for call_id in pending:
            if call_id not in given:
                raise InvalidArgument(f"No tool output found for function call {call_id}.", param="input")
        started = await self.engine.submit_tool_outputs(tenant, run.thread_id, run.id, list(request.tool_outputs))
        record.thread_id, record.run_id = run.thread_id, run.id
        record.container_id = await self.containers.of_run(tenant, run.id) or ""
        record.after_sequence = started.channel.first_sequence - 1
        record.context_message_id = context_message_id
        return []

    async def _follow_on(self, tenant, request, previous, run, record) -> tuple[list[str], bool]:
        """A new run after a previous response that ended: on its thread when it is the newest
        there, else on a new thread with a copy of its context (a branch)."""
        if request.tool_outputs and not request.calls:
            call_id = request.tool_outputs[0].tool_call_id
            raise InvalidArgument(
                f"No tool call found for function call output with call_id {call_id}.", param=request.output_params[0]
            )
        if run.status not in TERMINAL:
            raise FailedPrecondition(
                f"Previous response '{previous.id}' is still in progress; wait for it to end before following it.",
                param="previous_response_id",
            )
        newest, _ = await self.repo.list_page(tenant, run_pb2.Run, previous.thread_id, ListQuery(limit=1))
        if newest and newest[0].id == previous.run_id:
            record.thread_id = previous.thread_id
            return await self._start(tenant, request, record, None, []), False
        record.thread_id = ids.new_id("thread_")
        copies = []
        for m in await self._context(tenant, previous):
            copy = message_pb2.Message()
            copy.CopyFrom(m)
            copy.id, copy.thread_id = ids.new_id("msg_"), record.thread_id
            copy.ClearField("run_id")
            copies.append(copy)
        thread = thread_pb2.Thread(id=record.thread_id, object="thread", created_at=record.created_at)
        return await self._start(tenant, request, record, thread, copies), True

    async def _context(self, tenant: str, previous: response_pb2.StoredResponse) -> list[message_pb2.Message]:
        """The thread messages a response's context holds: its thread's, up to its own output."""
        messages = await self.repo.all(tenant, message_pb2.Message, previous.thread_id)
        keep = [i for i, m in enumerate(messages) if m.id <= previous.context_message_id or m.run_id == previous.run_id]
        return messages[: keep[-1] + 1] if keep else []

    def _discard_later(self, tenant: str, record: response_pb2.StoredResponse) -> None:
        """Discards a store-false response's own thread once it has ended, in the background, so a
        caller that went away leaves nothing behind either."""
        task = asyncio.ensure_future(self._discard(tenant, record))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    async def _discard(self, tenant: str, record: response_pb2.StoredResponse) -> None:
        try:
            async for _ in self.engine.follow(tenant, record.thread_id, record.run_id, record.after_sequence):
                pass
            run = await self.repo.get(tenant, run_pb2.Run, record.run_id, record.thread_id)
            if run is not None and run.status == run_pb2.RUN_STATUS_REQUIRES_ACTION:
                # its calls can never be answered: a store-false response cannot be chained
                await self.engine.cancel(tenant, record.thread_id, record.run_id)
            await self.repo.store.delete_thread(tenant, record.thread_id)
        except Exception:
            log.warning("could not discard the thread %s of a store-false response", record.thread_id, exc_info=True)

    # ---- rendering -----------------------------------------------------------------------

    async def _render(
        self, tenant: str, record: response_pb2.StoredResponse, renderer: Renderer
    ) -> AsyncIterator[response_pb2.ResponseEvent]:
        """The response's events, replayed from the run's log and then live, to its end."""
        async for event in self.engine.follow(tenant, record.thread_id, record.run_id, record.after_sequence):
            for rendered in renderer.feed(event):
                if rendered.type in CLOSING_EVENTS:
                    await self._included(tenant, record, rendered.lifecycle.response)
                    if not record.HasField("final_response") and not record.HasField("final"):
                        await self._keep_final(tenant, record, rendered.lifecycle.response)
                yield rendered
            if renderer.ended:
                return

    async def _included(
        self, tenant: str, record: response_pb2.StoredResponse, response: response_pb2.Response
    ) -> response_pb2.Response:
        """Adds what `include` asked for to a response that has ended."""
        searched = any(item.WhichOneof("item") == "file_search_call" for item in response.output)
        if requests.SEARCH_RESULTS in record.include and searched:
            with_search_results(response, await self.repo.all(tenant, run_pb2.RunStep, record.run_id))
        return response

    async def _snapshot(self, tenant: str, record: response_pb2.StoredResponse) -> response_pb2.Response:
        """The response as its run's committed log says now (without waiting for more). Once it
        has ended, that is kept with the record for the reads after. (A record kept by an older
        version holds its end as OpenAI's JSON, `final`, read as it is.)"""
        if record.HasField("final_response"):
            return record.final_response
        if record.HasField("final"):
            return response_from_json(struct_to_python(record.final))
        renderer = _renderer(record)
        after = record.after_sequence
        while not renderer.ended:
            stored = await self.repo.store.read_events(tenant, record.run_id, after)
            if not stored:
                break
            for sequence, data in stored:
                renderer.feed(run_pb2.RunEvent.FromString(data))
                after = sequence
                if renderer.ended:
                    break
        snapshot = renderer.snapshot()
        if renderer.ended:
            await self._included(tenant, record, snapshot)
            await self._keep_final(tenant, record, snapshot)
        return snapshot

    async def _keep_final(
        self, tenant: str, record: response_pb2.StoredResponse, response: response_pb2.Response
    ) -> None:
        if await self.repo.get(tenant, response_pb2.StoredResponse, record.id) is not None:  # not deleted meanwhile
            record.final_response.CopyFrom(response)
            await self.repo.put(tenant, record)

    # ---- the RPCs ------------------------------------------------------------------------

    @unary
    async def CreateResponse(self, tenant, request, context):
        body = struct_to_python(request.body)
        record, created_thread = await self._create(tenant, body)
        renderer = _renderer(record)
        closing = None
        try:
            if not body.get("background"):
                async for rendered in self._render(tenant, record, renderer):
                    closing = rendered.lifecycle.response if rendered.type in CLOSING_EVENTS else closing
        finally:
            if created_thread and body.get("store") is False:
                self._discard_later(tenant, record)
        return response_pb2.CreateResponseResponse(response=closing or renderer.snapshot())

    @streaming
    async def CreateResponseStream(self, tenant, request, context):
        body = struct_to_python(request.body)
        record, created_thread = await self._create(tenant, body)
        renderer = _renderer(record)
        try:
            async for rendered in self._render(tenant, record, renderer):
                yield response_pb2.CreateResponseStreamResponse(event=rendered)
        finally:
            if created_thread and body.get("store") is False:
                self._discard_later(tenant, record)

    @streaming
    async def WatchResponse(self, tenant, request, context):
        record = await self._stored(tenant, request.response_id)
        after = request.starting_after if request.HasField("starting_after") else -1
        renderer = _renderer(record)
        async for rendered in self._render(tenant, record, renderer):
            if rendered.sequence_number > after:
                yield response_pb2.WatchResponseResponse(event=rendered)

    @unary
    async def GetResponse(self, tenant, request, context):
        record = await self._stored(tenant, request.response_id)
        return response_pb2.GetResponseResponse(response=await self._snapshot(tenant, record))

    @unary
    async def CancelResponse(self, tenant, request, context):
        record = await self._stored(tenant, request.response_id)
        if not struct_to_python(record.base).get("background"):
            raise InvalidArgument("Only responses created with background=true can be cancelled.")
        snapshot = await self._snapshot(tenant, record)
        if snapshot.status not in FINAL_STATUSES:
            try:
                await self.engine.cancel(tenant, record.thread_id, record.run_id)
            except FailedPrecondition:
                pass  # it ended meanwhile
            renderer = _renderer(record)
            async for _ in self._render(tenant, record, renderer):
                pass
            snapshot = renderer.snapshot()
        return response_pb2.CancelResponseResponse(response=snapshot)

    @unary
    async def DeleteResponse(self, tenant, request, context):
        if not await self.repo.delete(tenant, response_pb2.StoredResponse, request.response_id):
            raise NotFound(f"Response with id '{request.response_id}' not found.", param="response_id")
        return response_pb2.DeleteResponseResponse(id=request.response_id, object="response", deleted=True)

    @unary
    async def ListInputItems(self, tenant, request, context):
        record = await self._stored(tenant, request.response_id)
        items: list[Any] = [struct_to_python(value.struct_value) for value in record.input_items.values]
        limit = request.limit if request.HasField("limit") else 20
        if not 1 <= limit <= 100:
            raise InvalidArgument("Invalid 'limit': expected a value between 1 and 100.", param="limit")
        if request.order not in ("", "asc", "desc"):
            raise InvalidArgument("Invalid 'order': expected 'asc' or 'desc'.", param="order", code="invalid_value")
        if request.order != "asc":
            items.reverse()
        position = {item["id"]: i for i, item in enumerate(items)}
        start = position[request.after] + 1 if request.after in position else 0
        end = position[request.before] if request.before in position else len(items)
        page = items[start:end][:limit]
        response = response_pb2.ListInputItemsResponse(
            data=[_struct(item) for item in page],
            first_id=page[0]["id"] if page else "",
            last_id=page[-1]["id"] if page else "",
            has_more=start + len(page) < end,
        )
        return response

    @unary
    async def CountInputTokens(self, tenant, request, context):
        """The prompt a response with this body would send: its instructions, its context (the
        previous response's or the conversation's) and its input."""
        body = struct_to_python(request.body)
        parsed = requests.parse(body)
        await add_file_texts(self.repo, self.blobs, tenant, parsed)
        if parsed.prompt_id:
            assistant = await self.repo.get(tenant, assistant_pb2.Assistant, parsed.prompt_id)
            if assistant is None:
                raise NotFound(f"Prompt with id '{parsed.prompt_id}' not found.", param="prompt.id")
            requests.use_assistant(parsed, assistant)
        history: list[message_pb2.Message] = []
        if parsed.previous_response_id:
            previous = await self.repo.get(tenant, response_pb2.StoredResponse, parsed.previous_response_id)
            if previous is None:
                raise InvalidArgument(
                    f"Previous response with id '{parsed.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = await self._context(tenant, previous)
        elif parsed.conversation:
            history = await self.repo.all(tenant, message_pb2.Message, parsed.conversation)
        run = requests.new_run(parsed, "")
        messages, steps = requests.new_context(parsed, run)
        chat = build_messages(run, history + messages, steps)
        count = await self.provider.count_tokens(run.model, chat)
        return response_pb2.CountInputTokensResponse(input_tokens=count)
