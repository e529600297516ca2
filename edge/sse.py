"""RunEvent -> Server-Sent Events, as OpenAI's Assistants streams look on the wire."""

import json

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
    else:
        data = json.dumps(render(getattr(event, payload), delta=payload in _DELTAS), separators=(",", ":"))
    return f"event: {name}\nid: {event.sequence_number}\ndata: {data}\n\n".encode()


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
