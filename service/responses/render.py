"""A response's stream events and its object, as a rendering of its run's event log: typed
`ResponseEvent`s and a typed `Response` (response.proto), which the edge writes as OpenAI's JSON.

Pure: no I/O, no clock, no ids. The same log always renders the same events with the same
sequence numbers, so a stream resumed with `starting_after` is the log rendered again with the
events up to there dropped. A response covers one segment of its run's log: from the event after
its `after_sequence` up to the segment's `done`.
"""

from collections.abc import Iterable
from typing import Any

from assistd.v1 import common_pb2, message_pb2, response_item_pb2, response_pb2, run_pb2

from service.engine.lifecycle import TERMINAL
from service.protojson import enum_name
from service.responses.request import CODE_OUTPUTS
from service.responses.typed import Json, response_from_json, usage

E = run_pb2
R = response_pb2
I = response_item_pb2  # noqa: E741
S = response_item_pb2.ResponseItemStatus

# A run's status at the end of a segment -> (response status, its closing event).
_ENDINGS = {
    E.RUN_STATUS_COMPLETED: (R.RESPONSE_STATUS_COMPLETED, "response.completed"),
    E.RUN_STATUS_REQUIRES_ACTION: (R.RESPONSE_STATUS_COMPLETED, "response.completed"),  # ends with function calls
    E.RUN_STATUS_INCOMPLETE: (R.RESPONSE_STATUS_INCOMPLETE, "response.incomplete"),
    E.RUN_STATUS_FAILED: (R.RESPONSE_STATUS_FAILED, "response.failed"),
    # Responses streams have no cancelled event: a cancelled response ends as a failed stream does.
    E.RUN_STATUS_CANCELLED: (R.RESPONSE_STATUS_CANCELLED, "response.failed"),
    E.RUN_STATUS_EXPIRED: (R.RESPONSE_STATUS_FAILED, "response.failed"),
}
FINAL_STATUSES = frozenset(
    {R.RESPONSE_STATUS_COMPLETED, R.RESPONSE_STATUS_INCOMPLETE, R.RESPONSE_STATUS_FAILED, R.RESPONSE_STATUS_CANCELLED}
)
CLOSING_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_INCOMPLETE_REASONS = {
    E.RUN_INCOMPLETE_REASON_MAX_COMPLETION_TOKENS: "max_output_tokens",
    E.RUN_INCOMPLETE_REASON_MAX_PROMPT_TOKENS: "max_output_tokens",
}


def function_item_id(call_id: str) -> str:
    """The output item id of a function call: derived from its call id, so renderings agree."""
    return "fc_" + call_id.removeprefix("call_")


def search_item_id(call_id: str) -> str:
    """The output item id of a file_search call, derived from its call id."""
    return "fs_" + call_id.removeprefix("call_")


def code_item_id(call_id: str) -> str:
    """The output item id of a code_interpreter call, derived from its call id."""
    return "ci_" + call_id.removeprefix("call_")


def container_file_url(container_id: str, file_id: str) -> str:
    """Where an image a code_interpreter call made downloads from (relative to the server; the
    SDK's `containers.files.content.retrieve(file_id, container_id=...)`)."""
    return f"/v1/containers/{container_id}/files/{file_id}/content"


def _text_of(message: message_pb2.Message) -> str:
    return "".join(part.text.value for part in message.content if part.WhichOneof("kind") == "text")


def _annotations(
    message: message_pb2.Message, filenames: dict[str, str], container_id: str
) -> list[I.ResponseAnnotation]:
    found: list[I.ResponseAnnotation] = []
    for part in message.content:
        for annotation in part.text.annotations if part.WhichOneof("kind") == "text" else ():
            if annotation.WhichOneof("kind") == "file_path" and container_id:  # a link to a container file
                link = I.ResponseContainerFileCitation(
                    container_id=container_id,
                    file_id=annotation.file_path.file_id,
                    filename=annotation.text.rsplit("/", 1)[-1],
                    start_index=annotation.start_index,
                    end_index=annotation.end_index,
                )
                found.append(I.ResponseAnnotation(container_file_citation=link))
            elif annotation.WhichOneof("kind") == "file_citation":
                file_id = annotation.file_citation.file_id
                citation = I.ResponseFileCitation(
                    file_id=file_id, filename=filenames.get(file_id, ""), index=annotation.end_index
                )
                found.append(I.ResponseAnnotation(file_citation=citation))
    return found


class Renderer:
    """Folds a response's run events into typed Responses stream events and the `Response`."""

    def __init__(self, base: Json, include: Iterable[str] = (), container_id: str = ""):
        self.response = response_from_json(base)  # the response so far, its output items included
        self.response.status = self.response.status or R.RESPONSE_STATUS_QUEUED
        self.sequence = 0  # the next event's sequence number
        self.ended = False  # the segment's `done` was read: nothing more belongs to this response
        self._open: dict[str, int] = {}  # message id or call id -> output index, while not done
        self._step_calls: dict[tuple[str, int], str] = {}  # (step id, call index) -> call id
        self._usage_before: tuple[int, int] | None = None  # the run's usage before this response
        self._filenames: dict[str, str] = {}  # file id -> name, from this response's searches
        self._container_id = container_id  # where its code_interpreter calls run
        self._code_outputs = CODE_OUTPUTS in include  # outputs are null unless asked for

    @property
    def status(self) -> str:
        return enum_name(R.ResponseStatus.DESCRIPTOR, self.response.status) or ""

    def snapshot(self) -> response_pb2.Response:
        """The response as of the events read so far (a copy)."""
        snapshot = R.Response()
        snapshot.CopyFrom(self.response)
        return snapshot

    def _event(self, event_type: str, **payload: Any) -> response_pb2.ResponseEvent:
        """An event with its one payload (`name=message`), numbered next."""
        event = R.ResponseEvent(sequence_number=self.sequence, type=event_type, **payload)
        self.sequence += 1
        return event

    def _lifecycle(self, event_type: str) -> response_pb2.ResponseEvent:
        return self._event(event_type, lifecycle=R.ResponseLifecycleEvent(response=self.response))

    def _item_event(self, event_type: str, index: int) -> response_pb2.ResponseEvent:
        item = self.response.output[index]
        return self._event(event_type, output_item=R.ResponseOutputItemEvent(output_index=index, item=item))

    def _status_event(self, event_type: str, item_id: str, index: int) -> response_pb2.ResponseEvent:
        return self._event(event_type, call_status=R.ResponseCallStatusEvent(item_id=item_id, output_index=index))

    def _new_item(self, key: str) -> tuple[int, response_item_pb2.ResponseItem]:
        """A new output item, open under `key` (a message id or call id) until it is done."""
        index = len(self.response.output)
        self._open[key] = index
        return index, self.response.output.add()

    def feed(self, event: run_pb2.RunEvent) -> list[response_pb2.ResponseEvent]:
        """The Responses events one run event becomes (often none)."""
        if self.ended:
            return []
        kind = event.event
        if kind == E.RUN_EVENT_TYPE_DONE:
            self.ended = True
            return []
        if kind in (E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED):
            return self._queued(event.run, kind)
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS:
            self.response.status = R.RESPONSE_STATUS_IN_PROGRESS
            return [self._lifecycle("response.in_progress")]
        if kind == E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED:
            return self._message_added(event.message)
        if kind == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA:
            return self._text_delta(event.message_delta)
        if kind in (E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE):
            return self._message_done(event.message)
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA:
            return self._call_delta(event.run_step_delta)
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED:
            return self._searches_done(event.run_step)
        if event.WhichOneof("data") == "run" and (
            event.run.status in TERMINAL or kind == E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION
        ):
            return self._end(event.run)
        return []

    # ---- lifecycle ----------------------------------------------------------------------

    def _queued(self, run: run_pb2.Run, kind: int) -> list[response_pb2.ResponseEvent]:
        events = []
        background = self.response.background
        if self._usage_before is None:  # the first event of this response
            self._usage_before = (run.usage.prompt_tokens, run.usage.completion_tokens)
            self.response.status = R.RESPONSE_STATUS_QUEUED if background else R.RESPONSE_STATUS_IN_PROGRESS
            events.append(self._lifecycle("response.created"))
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED and background:
            self.response.status = R.RESPONSE_STATUS_QUEUED
            events.append(self._lifecycle("response.queued"))
        return events

    def _end(self, run: run_pb2.Run) -> list[response_pb2.ResponseEvent]:
        events = []
        calls = {call.id: call for call in run.required_action.submit_tool_outputs.tool_calls}
        status, closing = _ENDINGS[run.status]
        for key, index in list(self._open.items()):
            item = self.response.output[index]
            if item.WhichOneof("item") == "function_call":
                call = item.function_call
                if key in calls:
                    call.arguments = calls[key].function.arguments
                call.status = S.RESPONSE_ITEM_STATUS_COMPLETED
                if status != R.RESPONSE_STATUS_COMPLETED:
                    call.status = S.RESPONSE_ITEM_STATUS_INCOMPLETE
                done = R.ResponseArgumentsDoneEvent(item_id=call.id, output_index=index, arguments=call.arguments)
                events.append(self._event("response.function_call_arguments.done", arguments_done=done))
                events.append(self._item_event("response.output_item.done", index))
            elif item.WhichOneof("item") == "code_interpreter_call":  # ended before its code ran
                item.code_interpreter_call.status = S.RESPONSE_ITEM_STATUS_INCOMPLETE
                events.append(self._item_event("response.output_item.done", index))
            del self._open[key]
        before = self._usage_before or (0, 0)
        self.response.status = status
        self.response.usage.CopyFrom(
            usage(run.usage.prompt_tokens - before[0], run.usage.completion_tokens - before[1])
        )
        if run.status == E.RUN_STATUS_FAILED:
            code = enum_name(common_pb2.LastErrorCode.DESCRIPTOR, run.last_error.code) or "server_error"
            self.response.error.CopyFrom(R.ResponseError(code=code, message=run.last_error.message))
        if run.status == E.RUN_STATUS_INCOMPLETE:
            reason = _INCOMPLETE_REASONS.get(run.incomplete_details.reason, "max_output_tokens")
            self.response.incomplete_details.reason = reason
        if run.HasField("completed_at") and status in (R.RESPONSE_STATUS_COMPLETED, R.RESPONSE_STATUS_INCOMPLETE):
            self.response.completed_at = run.completed_at
        events.append(self._lifecycle(closing))
        return events

    # ---- message items --------------------------------------------------------------------

    def _message_added(self, message: message_pb2.Message) -> list[response_pb2.ResponseEvent]:
        index, item = self._new_item(message.id)
        item.message.id = message.id
        item.message.status = S.RESPONSE_ITEM_STATUS_IN_PROGRESS
        item.message.role = "assistant"
        added = self._item_event("response.output_item.added", index)
        part = item.message.content.add()
        part.output_text.SetInParent()
        content = R.ResponseContentPartEvent(item_id=message.id, output_index=index, content_index=0, part=part)
        return [added, self._event("response.content_part.added", content_part=content)]

    def _text_delta(self, delta_event: message_pb2.MessageDeltaEvent) -> list[response_pb2.ResponseEvent]:
        index = self._open.get(delta_event.id)
        if index is None:
            return []
        part = self.response.output[index].message.content[0].output_text
        events = []
        for content in delta_event.delta.content:
            if content.WhichOneof("kind") == "text" and content.text.value:
                part.text += content.text.value
                delta = R.ResponseTextDeltaEvent(
                    item_id=delta_event.id, output_index=index, content_index=0, delta=content.text.value
                )
                events.append(self._event("response.output_text.delta", text_delta=delta))
        return events

    def _message_done(self, message: message_pb2.Message) -> list[response_pb2.ResponseEvent]:
        index = self._open.pop(message.id, None)
        if index is None:
            return []
        item = self.response.output[index].message
        part = item.content[0]
        part.output_text.text = _text_of(message)
        part.output_text.annotations.extend(_annotations(message, self._filenames, self._container_id))
        completed = message.status == message_pb2.MESSAGE_STATUS_COMPLETED
        item.status = S.RESPONSE_ITEM_STATUS_COMPLETED if completed else S.RESPONSE_ITEM_STATUS_INCOMPLETE
        common: dict[str, Any] = {"item_id": message.id, "output_index": index, "content_index": 0}
        events = [
            self._event(
                "response.output_text.annotation.added",
                annotation_added=R.ResponseAnnotationAddedEvent(**common, annotation_index=i, annotation=annotation),
            )
            for i, annotation in enumerate(part.output_text.annotations)
        ]
        text_done = R.ResponseTextDoneEvent(**common, text=part.output_text.text)
        events.append(self._event("response.output_text.done", text_done=text_done))
        content = R.ResponseContentPartEvent(**common, part=part)
        events.append(self._event("response.content_part.done", content_part=content))
        events.append(self._item_event("response.output_item.done", index))
        return events

    # ---- function call items --------------------------------------------------------------

    def _call_delta(self, delta_event: run_pb2.RunStepDeltaEvent) -> list[response_pb2.ResponseEvent]:
        events = []
        for call in delta_event.delta.step_details.tool_calls.items:
            if call.WhichOneof("kind") == "file_search" and call.HasField("id"):
                events.extend(self._search_added(call.id))
            if call.WhichOneof("kind") == "code_interpreter":
                events.extend(self._code_delta(delta_event.id, call))
            if call.WhichOneof("kind") != "function":
                continue
            key = (delta_event.id, call.index)
            call_id = self._step_calls.get(key)
            if call_id is None:
                if not call.id:
                    continue
                call_id = self._step_calls[key] = call.id
                index, item = self._new_item(call_id)
                item.function_call.CopyFrom(
                    I.ResponseFunctionCall(
                        id=function_item_id(call_id),
                        status=S.RESPONSE_ITEM_STATUS_IN_PROGRESS,
                        call_id=call_id,
                        name=call.function.name,
                    )
                )
                events.append(self._item_event("response.output_item.added", index))
            position = self._open.get(call_id)
            if position is None:
                continue
            function = self.response.output[position].function_call
            if call.function.name and not call.HasField("id"):  # a name continued in a later fragment
                function.name += call.function.name
            if call.function.arguments:
                function.arguments += call.function.arguments
                delta = R.ResponseCallDeltaEvent(
                    item_id=function.id, output_index=position, delta=call.function.arguments
                )
                events.append(self._event("response.function_call_arguments.delta", call_delta=delta))
        return events

    # ---- file_search items ----------------------------------------------------------------

    def _search_added(self, call_id: str) -> list[response_pb2.ResponseEvent]:
        index, item = self._new_item(call_id)
        search = item.file_search_call
        search.id, search.status = search_item_id(call_id), S.RESPONSE_ITEM_STATUS_IN_PROGRESS
        added = self._item_event("response.output_item.added", index)
        search.status = S.RESPONSE_ITEM_STATUS_SEARCHING
        return [
            added,
            self._status_event("response.file_search_call.in_progress", search.id, index),
            self._status_event("response.file_search_call.searching", search.id, index),
        ]

    def _searches_done(self, step: run_pb2.RunStep) -> list[response_pb2.ResponseEvent]:
        events = []
        for call in step.step_details.tool_calls.items:
            index = self._open.get(call.id)
            if call.WhichOneof("kind") != "file_search" or index is None:
                continue
            del self._open[call.id]
            for result in call.file_search.results:
                self._filenames[result.file_id] = result.file_name
            search = self.response.output[index].file_search_call
            search.status = S.RESPONSE_ITEM_STATUS_COMPLETED
            events.append(self._status_event("response.file_search_call.completed", search.id, index))
            events.append(self._item_event("response.output_item.done", index))
        return events

    # ---- code_interpreter items ---------------------------------------------------------

    def _code_delta(self, step_id: str, call: run_pb2.ToolCallDelta) -> list[response_pb2.ResponseEvent]:
        """A code call's item: added with its id, its code streamed, then (once it ran) its
        outputs: code done, interpreting, completed, item done, in OpenAI's order."""
        events = []
        key = (step_id, call.index)
        if key not in self._step_calls:
            if not call.id:
                return []
            self._step_calls[key] = call.id
            index, item = self._new_item(call.id)
            item.code_interpreter_call.CopyFrom(
                I.ResponseCodeInterpreterCall(
                    id=code_item_id(call.id), status=S.RESPONSE_ITEM_STATUS_IN_PROGRESS, container_id=self._container_id
                )
            )
            events.append(self._item_event("response.output_item.added", index))
            item_id = item.code_interpreter_call.id
            events.append(self._status_event("response.code_interpreter_call.in_progress", item_id, index))
        position = self._open.get(self._step_calls[key])
        if position is None:
            return events
        running = self.response.output[position].code_interpreter_call
        code = call.code_interpreter
        if code.input:
            running.code += code.input
            delta = R.ResponseCallDeltaEvent(item_id=running.id, output_index=position, delta=code.input)
            events.append(self._event("response.code_interpreter_call_code.delta", call_delta=delta))
        if code.outputs:
            del self._open[self._step_calls[key]]
            done = R.ResponseCodeDoneEvent(item_id=running.id, output_index=position, code=running.code)
            events.append(self._event("response.code_interpreter_call_code.done", code_done=done))
            running.status = S.RESPONSE_ITEM_STATUS_INTERPRETING
            events.append(self._status_event("response.code_interpreter_call.interpreting", running.id, position))
            running.status = S.RESPONSE_ITEM_STATUS_COMPLETED
            if self._code_outputs:
                running.outputs.SetInParent()
                for output in code.outputs:
                    if output.WhichOneof("kind") == "logs":
                        running.outputs.outputs.add().logs.logs = output.logs
                    else:
                        url = container_file_url(self._container_id, output.image.file_id)
                        running.outputs.outputs.add().image.url = url
            events.append(self._status_event("response.code_interpreter_call.completed", running.id, position))
            events.append(self._item_event("response.output_item.done", position))
        return events


def with_search_results(response: response_pb2.Response, steps: list[run_pb2.RunStep]) -> response_pb2.Response:
    """The response with its file_search_call items' results (include=["file_search_call.results"]),
    from the run's stored steps, which keep the results' text."""
    found = {
        search_item_id(call.id): call.file_search
        for step in steps
        for call in step.step_details.tool_calls.items
        if call.WhichOneof("kind") == "file_search"
    }
    for item in response.output:
        if item.WhichOneof("item") == "file_search_call" and item.file_search_call.id in found:
            results = item.file_search_call.results
            results.SetInParent()
            del results.results[:]
            for result in found[item.file_search_call.id].results:
                added = results.results.add(
                    file_id=result.file_id,
                    filename=result.file_name,
                    score=result.score,
                    text="\n".join(part.text for part in result.content),
                )
                added.attributes.SetInParent()
    return response


def render_all(
    base: Json, events: Iterable[run_pb2.RunEvent], include: Iterable[str] = (), container_id: str = ""
) -> tuple[list[response_pb2.ResponseEvent], response_pb2.Response]:
    """Every event a log renders to, and the response at its end (for tests and reads)."""
    renderer = Renderer(base, include, container_id)
    out = [rendered for event in events for rendered in renderer.feed(event)]
    return out, renderer.snapshot()
