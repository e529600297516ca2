from assistd.v1 import message_pb2, run_pb2

from edge.sse import EVENT_NAMES, encode


def test_every_event_type_has_one_sse_name():
    types = [v.number for v in run_pb2.RunEventType.DESCRIPTOR.values if v.number]
    assert sorted(EVENT_NAMES) == sorted(types)
    assert len(set(EVENT_NAMES.values())) == len(types)


def test_done_frame_and_delta_frame():
    assert (
        encode(run_pb2.RunEvent(sequence_number=9, event=run_pb2.RUN_EVENT_TYPE_DONE))
        == b"event: done\nid: 9\ndata: [DONE]\n\n"
    )
    event = run_pb2.RunEvent(sequence_number=3, event=run_pb2.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA)
    event.message_delta.id = "msg_1"
    event.message_delta.object = "thread.message.delta"
    event.message_delta.delta.content.add(index=0).text.value = "Hi"
    assert encode(event) == (
        b'event: thread.message.delta\nid: 3\ndata: {"id":"msg_1","object":"thread.message.delta",'
        b'"delta":{"content":[{"type":"text","index":0,"text":{"value":"Hi"}}]}}\n\n'
    )


def test_the_text_fragment_fast_path_writes_what_the_generic_codec_writes():
    import json

    from edge.codec import render
    from edge.sse import _text_delta

    texts = ["", "plain", 'quo"te \\ back', "new\nline\ttab", "ünïcødé ✓ 🦓", "\x00\x1f control", "【0†a.md】"]
    for index in (0, 3):
        for text in texts:
            event = message_pb2.MessageDeltaEvent(id="msg_x", object="thread.message.delta")
            event.delta.content.add(index=index).text.value = text
            generic = json.dumps(render(event, delta=True), separators=(",", ":"))
            assert _text_delta(event) == generic
    annotated = message_pb2.MessageDeltaEvent(id="msg_x")
    annotated.delta.content.add(index=0).text.annotations.add(index=0)
    with_role = message_pb2.MessageDeltaEvent(id="msg_x")
    with_role.delta.role = message_pb2.MESSAGE_ROLE_ASSISTANT
    with_role.delta.content.add(index=0).text.value = "x"
    for other in (annotated, with_role, message_pb2.MessageDeltaEvent(id="msg_x")):
        assert _text_delta(other) is None  # other shapes go through the generic codec


def test_the_arguments_fast_path_writes_what_the_generic_codec_writes():
    import json

    from edge.codec import render
    from edge.sse import _arguments_delta

    texts = ["", '{"city": "Lis', 'quo"te \\ back', "new\nline\ttab", "ünïcødé ✓ 🦓", "\x00\x1f control"]
    for index in (0, 2):
        for text in texts:
            event = run_pb2.RunStepDeltaEvent(id="step_x", object="thread.run.step.delta")
            event.delta.step_details.tool_calls.items.add(index=index).function.arguments = text
            generic = json.dumps(render(event, delta=True), separators=(",", ":"))
            assert _arguments_delta(event) == generic
    first = run_pb2.RunStepDeltaEvent(id="step_x")  # a call's first fragment: id and name
    call = first.delta.step_details.tool_calls.items.add(index=0, id="call_1")
    call.function.name, call.function.arguments = "f", ""
    named = run_pb2.RunStepDeltaEvent(id="step_x")
    named.delta.step_details.tool_calls.items.add(index=0).function.name = "f"
    code = run_pb2.RunStepDeltaEvent(id="step_x")
    code.delta.step_details.tool_calls.items.add(index=0).code_interpreter.input = "print(1)"
    two = run_pb2.RunStepDeltaEvent(id="step_x")
    for i in range(2):
        two.delta.step_details.tool_calls.items.add(index=i).function.arguments = "{}"
    message = run_pb2.RunStepDeltaEvent(id="step_x")
    message.delta.step_details.message_creation.message_id = "msg_1"
    for other in (first, named, code, two, message, run_pb2.RunStepDeltaEvent(id="step_x")):
        assert _arguments_delta(other) is None  # other shapes go through the generic codec


def test_shared_frames_encode_each_event_object_once_and_keep_a_bounded_number():
    from edge.sse import SharedFrames

    frames = SharedFrames()
    frames.SIZE = 2
    events = []
    for i in range(3):
        event = run_pb2.RunEvent(event=run_pb2.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, sequence_number=i + 1)
        event.message_delta.id = "msg_1"
        event.message_delta.delta.content.add(index=0).text.value = f"w{i}"
        events.append(event)
    first = frames.encode(events[0])
    assert first == encode(events[0])
    assert frames.encode(events[0]) is first  # a second follower gets the same bytes
    equal_but_other = run_pb2.RunEvent()
    equal_but_other.CopyFrom(events[0])
    equal_but_other.sequence_number = 9
    assert frames.encode(equal_but_other) == encode(equal_but_other)  # identity, not equality
    for event in events:
        assert frames.encode(event) == encode(event)
    assert len(frames._frames) == 2
