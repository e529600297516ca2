"""Merging consecutive text deltas of one message into one delta (the event log under backlog).

A merge only ever joins a delta to the one just before it in the same run, so order never
changes and the text a client assembles is the same; see EventLog.emit for when it happens.
"""

from assistd.v1 import message_pb2

# Characters one merged delta may reach: a backlog shrinks by merging, but no event grows unbounded.
MAX_COALESCED_TEXT = 2048


def _text_part(event: message_pb2.MessageDeltaEvent) -> message_pb2.MessageContentDelta | None:
    """The one plain text part of a delta (no role, no annotations), else None."""
    delta = event.delta
    if delta.HasField("role") or len(delta.content) != 1:
        return None
    part = delta.content[0]
    if part.WhichOneof("kind") != "text" or part.text.annotations:
        return None
    return part


def append_text(into: message_pb2.MessageDeltaEvent, more: message_pb2.MessageDeltaEvent) -> bool:
    """Appends more's text to into when both are plain text deltas of the same content part of
    the same message and the result stays within MAX_COALESCED_TEXT; returns whether it did."""
    if into.id != more.id:
        return False
    target, extra = _text_part(into), _text_part(more)
    if target is None or extra is None or target.index != extra.index:
        return False
    if len(target.text.value) + len(extra.text.value) > MAX_COALESCED_TEXT:
        return False
    target.text.value += extra.text.value
    return True
