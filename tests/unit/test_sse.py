from assistd.v1 import run_pb2

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
