"""The decoded-messages memo: the same bytes decode once, changed bytes are new, bounded by bytes."""

from assistd.v1 import message_pb2

from service.engine.history import DecodedMessages
from service.engine.prompt import message_entry


def _message(text: str, message_id: str = "msg_1", role=message_pb2.MESSAGE_ROLE_USER) -> message_pb2.Message:
    message = message_pb2.Message(id=message_id, role=role)
    if text:
        message.content.add().text.value = text
    return message


def test_the_same_bytes_decode_once_and_their_entry_is_the_prompt_entry():
    memo = DecodedMessages()
    data = _message("hi").SerializeToString()
    first = memo.decode(data)
    assert memo.decode(bytes(data)) is first
    assert first == _message("hi")
    assert memo.entry(first) == message_entry(_message("hi"))


def test_a_changed_message_is_decoded_anew():
    memo = DecodedMessages()
    old = memo.decode(_message("before").SerializeToString())
    new = memo.decode(_message("after").SerializeToString())
    assert new is not old
    assert memo.entry(new) == message_entry(_message("after"))


def test_messages_not_from_the_memo_and_messages_not_sent_get_their_own_entry():
    memo = DecodedMessages()
    assert memo.entry(_message("fresh")) == message_entry(_message("fresh"))
    empty = memo.decode(_message("").SerializeToString())
    assert memo.entry(empty) is None
    assert memo.entry(memo.decode(_message("").SerializeToString())) is None


def test_the_memo_is_bounded_by_the_bytes_it_holds_oldest_out_first():
    datas = [_message("x" * 100, message_id=f"msg_{i}").SerializeToString() for i in range(10)]
    memo = DecodedMessages(max_bytes=len(datas[0]) * 3)
    decoded = [memo.decode(data) for data in datas]
    assert len(memo) == 3
    assert memo.decode(datas[-1]) is decoded[-1]
    again = memo.decode(datas[0])  # evicted: decoded anew, still right
    assert again is not decoded[0] and again == decoded[0]
    assert memo.entry(decoded[0]) == message_entry(decoded[0])  # an evicted message still gets its entry
