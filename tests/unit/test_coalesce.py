"""Merging consecutive text deltas: only plain text of the same message part, bounded."""

from assistd.v1 import message_pb2

from service.engine.coalesce import MAX_COALESCED_TEXT, append_text


def _delta(text: str, message_id: str = "msg_1", index: int = 0) -> message_pb2.MessageDeltaEvent:
    event = message_pb2.MessageDeltaEvent(id=message_id, object="thread.message.delta")
    event.delta.content.add(index=index).text.value = text
    return event


def test_text_of_the_same_part_is_appended():
    into = _delta("Hello")
    assert append_text(into, _delta(", world"))
    assert into == _delta("Hello, world")


def test_other_messages_parts_and_shapes_are_not_merged():
    into = _delta("Hello")
    with_role = _delta("x")
    with_role.delta.role = message_pb2.MESSAGE_ROLE_ASSISTANT
    annotated = _delta("x")
    annotated.delta.content[0].text.annotations.add()
    image = message_pb2.MessageDeltaEvent(id="msg_1")
    image.delta.content.add(index=0).image_file.file_id = "file_1"
    two_parts = _delta("x")
    two_parts.delta.content.add(index=1).text.value = "y"
    for other in (_delta("x", message_id="msg_2"), _delta("x", index=1), with_role, annotated, image, two_parts):
        assert not append_text(into, other)
    assert into == _delta("Hello")
    assert not append_text(with_role, _delta("x"))  # nor into a delta that is not plain text


def test_a_merged_delta_stays_within_the_bound():
    into = _delta("a" * (MAX_COALESCED_TEXT - 1))
    assert append_text(into, _delta("b"))
    assert not append_text(into, _delta("c"))
    assert len(into.delta.content[0].text.value) == MAX_COALESCED_TEXT
