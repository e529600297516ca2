"""RunEvent -> Server-Sent Events, as OpenAI's Assistants streams look on the wire."""

import json
from collections import OrderedDict

from assistd.v1 import message_pb2, run_pb2

from edge.codec import render

E = run_pb2
# THE table RunEventType -> OpenAI SSE event name.
EVENT_NAMES: dict[int, str] = {
    E.RUN_EVENT_TYPE_THREAD_CREATED: "thread.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_CREATED: "thread.run.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED: "thread.run.queued",
    E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS: "thread.run.in_progress",
    E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION: "thread.run.requires_action",
    E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED: "thread.run.completed",
    E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE: "thread.run.incomplete",
    E.RUN_EVENT_TYPE_THREAD_RUN_FAILED: "thread.run.failed",
    E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING: "thread.run.cancelling",
    E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED: "thread.run.cancelled",
    E.RUN_EVENT_TYPE_THREAD_RUN_EXPIRED: "thread.run.expired",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED: "thread.run.step.created",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS: "thread.run.step.in_progress",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA: "thread.run.step.delta",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED: "thread.run.step.completed",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED: "thread.run.step.failed",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED: "thread.run.step.cancelled",
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED: "thread.run.step.expired",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED: "thread.message.created",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS: "thread.message.in_progress",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA: "thread.message.delta",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED: "thread.message.completed",
    E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE: "thread.message.incomplete",
    E.RUN_EVENT_TYPE_DONE: "done",
}
_DELTAS = {"run_step_delta", "message_delta"}

# A bare comment line, with no blank line after it: the openai SDK's decoder keeps the last `id:`
# and would dispatch a blank line after a comment as an empty event (json.loads("") fails).
HEARTBEAT = b": keep-alive\n"


def encode(event: run_pb2.RunEvent) -> bytes:
    """One SSE frame: `event:`, `id:` (the sequence number) and `data:`, ended by a blank line."""
    name = EVENT_NAMES[event.event]
    payload = event.WhichOneof("data")
    if event.event == E.RUN_EVENT_TYPE_DONE:
        data = "[DONE]"
    elif payload == "message_delta" and (text := _text_delta(event.message_delta)) is not None:
        data = text
    elif payload == "run_step_delta" and (arguments := _arguments_delta(event.run_step_delta)) is not None:
        data = arguments
    else:
        data = json.dumps(render(getattr(event, payload), delta=payload in _DELTAS), separators=(",", ":"))
    return f"event: {name}\nid: {event.sequence_number}\ndata: {data}\n\n".encode()


class SharedFrames:
    """Frames of events that several streams send: the service in this process hands every
    follower of a run the very same RunEvent objects, so each is encoded once, not once per
    follower. Keyed by object identity; an entry holds its event, so no other object can take
    that id while it is kept. The last SIZE events are kept."""

    SIZE = 4096

    def __init__(self) -> None:
        self._frames: OrderedDict[int, tuple[run_pb2.RunEvent, bytes]] = OrderedDict()

    def encode(self, event: run_pb2.RunEvent) -> bytes:
        kept = self._frames.get(id(event))
        if kept is not None and kept[0] is event:
            return kept[1]
        frame = encode(event)
        self._frames[id(event)] = (event, frame)
        if len(self._frames) > self.SIZE:
            self._frames.popitem(last=False)
        return frame


def encode_error(body: dict) -> bytes:
    """An `error` frame for a failure after the stream began, then the SDK's terminator."""
    return f"event: error\ndata: {json.dumps(body)}\n\nevent: done\ndata: [DONE]\n\n".encode()


def _text_delta(event: message_pb2.MessageDeltaEvent) -> str | None:
    """The JSON of the commonest event by far, one fragment of text, written out directly (the
    generic codec costs ~10x more); None for any other shape. Byte for byte what render() gives."""
    delta = event.delta
    if delta.HasField("role") or len(delta.content) != 1:
        return None
    part = delta.content[0]
    if part.WhichOneof("kind") != "text" or part.text.annotations or not part.text.HasField("value"):
        return None
    return (
        f'{{"id":{json.dumps(event.id)},"object":{json.dumps(event.object)},"delta":{{"content":'
        f'[{{"type":"text","index":{part.index},"text":{{"value":{json.dumps(part.text.value)}}}}}]}}}}'
    )


def _arguments_delta(event: run_pb2.RunStepDeltaEvent) -> str | None:
    """The JSON of the commonest step delta, more argument text of one function call, written out
    directly; None for any other shape. Byte for byte what render() gives."""
    details = event.delta.step_details
    if details.WhichOneof("kind") != "tool_calls" or len(details.tool_calls.items) != 1:
        return None
    call = details.tool_calls.items[0]
    if call.HasField("id") or call.WhichOneof("kind") != "function":
        return None
    function = call.function
    if function.HasField("name") or function.HasField("output") or not function.HasField("arguments"):
        return None
    return (
        f'{{"id":{json.dumps(event.id)},"object":{json.dumps(event.object)},"delta":{{"step_details":'
        f'{{"type":"tool_calls","tool_calls":[{{"type":"function","index":{call.index},"function":'
        f'{{"arguments":{json.dumps(function.arguments)}}}}}]}}}}}}'
    )
