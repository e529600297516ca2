"""A thread's stored messages, decoded and turned into prompt entries once per process.

Every run still reads its thread's messages from the store: the store is the truth, so a message
another replica wrote, changed or deleted a moment ago is in the next prompt. What is kept in
memory is only the work after that read, which grows with the thread: decoding each message and
turning it into chat messages. The memo is keyed by the stored bytes themselves, so it cannot
answer for a message that changed (changed bytes are a new key) and needs no invalidation; it is
bounded by the bytes it holds, least recently used first out.

The decoded messages it returns are shared between runs: read them, never change them.
"""

from collections import OrderedDict

from assistd.v1 import message_pb2

from service.engine.prompt import Entry, message_entry

_NOT_SENT: Entry = ("", [])  # the memo's note for a message the model is not sent (message_entry's None)


class DecodedMessages:
    """stored bytes -> (the message, its prompt entry), for the most recently read messages."""

    def __init__(self, max_bytes: int = 32 << 20):
        self._max_bytes = max_bytes
        self._bytes = 0
        self._memo: OrderedDict[bytes, message_pb2.Message] = OrderedDict()
        # id() of a message held in _memo -> its entry. Sound because _memo keeps each message
        # alive (no other object can have its id meanwhile) and both drop it together.
        self._entries: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def decode(self, data: bytes) -> message_pb2.Message:
        message = self._memo.get(data)
        if message is not None:
            self._memo.move_to_end(data)
            return message
        message = message_pb2.Message.FromString(data)
        self._memo[data] = message
        self._entries[id(message)] = message_entry(message) or _NOT_SENT
        self._bytes += len(data)
        while self._bytes > self._max_bytes and len(self._memo) > 1:
            old_data, old = self._memo.popitem(last=False)
            del self._entries[id(old)]
            self._bytes -= len(old_data)
        return message

    def entry(self, message: message_pb2.Message) -> Entry | None:
        """message_entry(message), from the memo when this message came from decode()."""
        entry = self._entries.get(id(message))
        if entry is None:
            return message_entry(message)
        return None if entry is _NOT_SENT else entry
