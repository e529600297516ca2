"""A response's stream events and its object, as a rendering of its run's event log.

Pure: no I/O, no clock, no ids. The same log always renders the same events with the same
sequence numbers, so a stream resumed with `starting_after` is the log rendered again with the
events up to there dropped. A response covers one segment of its run's log: from the event after
its `after_sequence` up to the segment's `done`.
"""

import copy
from collections.abc import Iterable
from typing import Any

from assistd.v1 import common_pb2, message_pb2, run_pb2

from service.engine.lifecycle import TERMINAL
from service.protojson import enum_name
from service.responses.request import CODE_OUTPUTS

E = run_pb2
Json = dict[str, Any]

# A run's status at the end of a segment -> (response status, its closing event).
_ENDINGS = {
    E.RUN_STATUS_COMPLETED: ("completed", "response.completed"),
    E.RUN_STATUS_REQUIRES_ACTION: ("completed", "response.completed"),  # ends with function_call items
    E.RUN_STATUS_INCOMPLETE: ("incomplete", "response.incomplete"),
    E.RUN_STATUS_FAILED: ("failed", "response.failed"),
    # Responses streams have no cancelled event: a cancelled response ends as a failed stream does.
    E.RUN_STATUS_CANCELLED: ("cancelled", "response.failed"),
    E.RUN_STATUS_EXPIRED: ("failed", "response.failed"),
}
FINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
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


def usage_json(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},  # the SDK requires both
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _text_of(message: message_pb2.Message) -> str:
    return "".join(part.text.value for part in message.content if part.WhichOneof("kind") == "text")


def _annotations(message: message_pb2.Message, filenames: dict[str, str], container_id: str) -> list[Json]:
    found: list[Json] = []
    for part in message.content:
        for annotation in part.text.annotations if part.WhichOneof("kind") == "text" else ():
            if annotation.WhichOneof("kind") == "file_path" and container_id:  # a link to a container file
                found.append(
                    {
                        "type": "container_file_citation",
                        "container_id": container_id,
                        "file_id": annotation.file_path.file_id,
                        "filename": annotation.text.rsplit("/", 1)[-1],
                        "start_index": annotation.start_index,
                        "end_index": annotation.end_index,
                    }
                )
            elif annotation.WhichOneof("kind") == "file_citation":
                found.append(
                    {
                        "type": "file_citation",
                        "file_id": annotation.file_citation.file_id,
                        "filename": filenames.get(annotation.file_citation.file_id, ""),
                        "index": annotation.end_index,
                    }
                )
    return found


class Renderer:
    """Folds a response's run events into Responses stream events and the `response` object."""

    def __init__(self, base: Json, include: Iterable[str] = (), container_id: str = ""):
        self.response: Json = {**copy.deepcopy(base), "output": [], "usage": None, "error": None}
        self.response.setdefault("status", "queued")
        self.response.setdefault("incomplete_details", None)
        self.response.setdefault("completed_at", None)
        self.sequence = 0  # the next event's sequence number
        self.ended = False  # the segment's `done` was read: nothing more belongs to this response
        self._items: list[Json] = []  # output items, in output_index order
        self._open: dict[str, int] = {}  # message id or call id -> output index, while not done
        self._step_calls: dict[tuple[str, int], str] = {}  # (step id, call index) -> call id
        self._usage_before: tuple[int, int] | None = None  # the run's usage before this response
        self._background = bool(base.get("background"))
        self._filenames: dict[str, str] = {}  # file id -> name, from this response's searches
        self._container_id = container_id  # where its code_interpreter calls run
        self._code_outputs = CODE_OUTPUTS in include  # outputs are null unless asked for

    @property
    def status(self) -> str:
        return str(self.response["status"])

    def snapshot(self) -> Json:
        """The response object as of the events read so far."""
        return {**copy.deepcopy(self.response), "output": copy.deepcopy(self._items)}

    def _event(self, event_type: str, **fields: Any) -> Json:
        event = {"type": event_type, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _lifecycle(self, event_type: str) -> Json:
        return self._event(event_type, response=self.snapshot())

    def feed(self, event: run_pb2.RunEvent) -> list[Json]:
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
            self.response["status"] = "in_progress"
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

    def _queued(self, run: run_pb2.Run, kind: int) -> list[Json]:
        events = []
        if self._usage_before is None:  # the first event of this response
            self._usage_before = (run.usage.prompt_tokens, run.usage.completion_tokens)
            self.response["status"] = "queued" if self._background else "in_progress"
            events.append(self._lifecycle("response.created"))
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED and self._background:
            self.response["status"] = "queued"
            events.append(self._lifecycle("response.queued"))
        return events

    def _end(self, run: run_pb2.Run) -> list[Json]:
        events = []
        calls = {call.id: call for call in run.required_action.submit_tool_outputs.tool_calls}
        status, closing = _ENDINGS[run.status]
        for key, index in list(self._open.items()):
            item = self._items[index]
            if item["type"] == "function_call":
                if key in calls:
                    item["arguments"] = calls[key].function.arguments
                item["status"] = "completed" if status == "completed" else "incomplete"
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
                events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
            elif item["type"] == "code_interpreter_call":  # ended before its code ran
                item["status"] = "incomplete"
                events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
            del self._open[key]
        before = self._usage_before or (0, 0)
        self.response["status"] = status
        self.response["usage"] = usage_json(
            run.usage.prompt_tokens - before[0], run.usage.completion_tokens - before[1]
        )
        if run.status == E.RUN_STATUS_FAILED:
            self.response["error"] = {
                "code": enum_name(common_pb2.LastErrorCode.DESCRIPTOR, run.last_error.code) or "server_error",
                "message": run.last_error.message,
            }
        if run.status == E.RUN_STATUS_INCOMPLETE:
            reason = _INCOMPLETE_REASONS.get(run.incomplete_details.reason, "max_output_tokens")
            self.response["incomplete_details"] = {"reason": reason}
        if run.HasField("completed_at") and status in ("completed", "incomplete"):
            self.response["completed_at"] = run.completed_at
        events.append(self._lifecycle(closing))
        return events

    # ---- message items --------------------------------------------------------------------

    def _message_added(self, message: message_pb2.Message) -> list[Json]:
        index = len(self._items)
        item: Json = {"id": message.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        self._items.append(item)
        self._open[message.id] = index
        added = self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(part)
        part_added = self._event(
            "response.content_part.added",
            item_id=message.id,
            output_index=index,
            content_index=0,
            part=copy.deepcopy(part),
        )
        return [added, part_added]

    def _text_delta(self, delta_event: message_pb2.MessageDeltaEvent) -> list[Json]:
        index = self._open.get(delta_event.id)
        if index is None:
            return []
        part = self._items[index]["content"][0]
        events = []
        for content in delta_event.delta.content:
            if content.WhichOneof("kind") == "text" and content.text.value:
                part["text"] += content.text.value
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=delta_event.id,
                        output_index=index,
                        content_index=0,
                        delta=content.text.value,
                        logprobs=[],
                    )
                )
        return events

    def _message_done(self, message: message_pb2.Message) -> list[Json]:
        index = self._open.pop(message.id, None)
        if index is None:
            return []
        item = self._items[index]
        part = item["content"][0]
        part["text"] = _text_of(message)
        part["annotations"] = _annotations(message, self._filenames, self._container_id)
        item["status"] = "completed" if message.status == message_pb2.MESSAGE_STATUS_COMPLETED else "incomplete"
        common = {"item_id": message.id, "output_index": index, "content_index": 0}
        annotated = [
            self._event("response.output_text.annotation.added", **common, annotation_index=i, annotation=annotation)
            for i, annotation in enumerate(copy.deepcopy(part["annotations"]))
        ]
        return annotated + [
            self._event("response.output_text.done", **common, text=part["text"], logprobs=[]),
            self._event("response.content_part.done", **common, part=copy.deepcopy(part)),
            self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)),
        ]

    # ---- function call items --------------------------------------------------------------

    def _call_delta(self, delta_event: run_pb2.RunStepDeltaEvent) -> list[Json]:
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
                index = len(self._items)
                item: Json = {
                    "id": function_item_id(call_id),
                    "type": "function_call",
                    "status": "in_progress",
                    "arguments": "",
                    "call_id": call_id,
                    "name": call.function.name,
                }
                self._items.append(item)
                self._open[call_id] = index
                events.append(self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item)))
            position = self._open.get(call_id)
            if position is None:
                continue
            item = self._items[position]
            if call.function.name and not call.HasField("id"):  # a name continued in a later fragment
                item["name"] += call.function.name
            if call.function.arguments:
                item["arguments"] += call.function.arguments
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=position,
                        delta=call.function.arguments,
                    )
                )
        return events

    # ---- file_search items ----------------------------------------------------------------

    def _search_added(self, call_id: str) -> list[Json]:
        index = len(self._items)
        item: Json = {"id": search_item_id(call_id), "type": "file_search_call", "status": "in_progress", "queries": []}
        item["results"] = None
        self._items.append(item)
        self._open[call_id] = index
        added = self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        common = {"item_id": item["id"], "output_index": index}
        item["status"] = "searching"
        return [
            added,
            self._event("response.file_search_call.in_progress", **common),
            self._event("response.file_search_call.searching", **common),
        ]

    def _searches_done(self, step: run_pb2.RunStep) -> list[Json]:
        events = []
        for call in step.step_details.tool_calls.items:
            index = self._open.get(call.id)
            if call.WhichOneof("kind") != "file_search" or index is None:
                continue
            del self._open[call.id]
            for result in call.file_search.results:
                self._filenames[result.file_id] = result.file_name
            item = self._items[index]
            item["status"] = "completed"
            events.append(self._event("response.file_search_call.completed", item_id=item["id"], output_index=index))
            events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        return events

    # ---- code_interpreter items ---------------------------------------------------------

    def _code_delta(self, step_id: str, call: run_pb2.ToolCallDelta) -> list[Json]:
        """A code call's item: added with its id, its code streamed, then (once it ran) its
        outputs: code done, interpreting, completed, item done, in OpenAI's order."""
        events = []
        key = (step_id, call.index)
        if key not in self._step_calls:
            if not call.id:
                return []
            self._step_calls[key] = call.id
            index = len(self._items)
            item: Json = {
                "id": code_item_id(call.id),
                "type": "code_interpreter_call",
                "status": "in_progress",
                "code": "",
                "outputs": None,
                "container_id": self._container_id,
            }
            self._items.append(item)
            self._open[call.id] = index
            events.append(self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item)))
            events.append(
                self._event("response.code_interpreter_call.in_progress", item_id=item["id"], output_index=index)
            )
        position = self._open.get(self._step_calls[key])
        if position is None:
            return events
        item = self._items[position]
        common = {"item_id": item["id"], "output_index": position}
        code = call.code_interpreter
        if code.input:
            item["code"] += code.input
            events.append(self._event("response.code_interpreter_call_code.delta", **common, delta=code.input))
        if code.outputs:
            del self._open[self._step_calls[key]]
            outputs = [
                {"type": "logs", "logs": output.logs}
                if output.WhichOneof("kind") == "logs"
                else {"type": "image", "url": container_file_url(self._container_id, output.image.file_id)}
                for output in code.outputs
            ]
            events.append(self._event("response.code_interpreter_call_code.done", **common, code=item["code"]))
            item["status"] = "interpreting"
            events.append(self._event("response.code_interpreter_call.interpreting", **common))
            item["status"] = "completed"
            item["outputs"] = outputs if self._code_outputs else None
            events.append(self._event("response.code_interpreter_call.completed", **common))
            events.append(self._event("response.output_item.done", output_index=position, item=copy.deepcopy(item)))
        return events


def with_search_results(response: Json, steps: list[run_pb2.RunStep]) -> Json:
    """The response with its file_search_call items' results (include=["file_search_call.results"]),
    from the run's stored steps, which keep the results' text."""
    found = {
        search_item_id(call.id): call.file_search
        for step in steps
        for call in step.step_details.tool_calls.items
        if call.WhichOneof("kind") == "file_search"
    }
    for item in response.get("output") or []:
        if item.get("type") == "file_search_call" and item["id"] in found:
            item["results"] = [
                {
                    "file_id": result.file_id,
                    "filename": result.file_name,
                    "score": result.score,
                    "text": "\n".join(part.text for part in result.content),
                    "attributes": {},
                }
                for result in found[item["id"]].results
            ]
    return response


def render_all(base: Json, events, include: Iterable[str] = (), container_id: str = "") -> tuple[list[Json], Json]:
    """Every event a log renders to, and the response at its end (for tests and reads)."""
    renderer = Renderer(base, include, container_id)
    out = [rendered for event in events for rendered in renderer.feed(event)]
    return out, renderer.snapshot()
