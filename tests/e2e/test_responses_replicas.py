"""Background responses over two `assistd serve` replicas on one Cassandra: a stream begun on
one replica resumes on the other with starting_after, a cancel through the other replica stops
it, and a killed replica's response is ended by the survivor."""

import threading

from tests.conftest import MODEL, unique, wait_for
from tests.e2e.test_replicas import LEASE, replicas  # noqa: F401 - the two-replica fixture


def test_a_background_stream_resumes_on_the_other_replica(replicas, provider):  # noqa: F811
    r1, r2 = replicas
    gate = unique("gate-responses")
    stream = r1.client().responses.create(
        model=MODEL, input=f"[chunks:20][gate:{gate}:5]", background=True, stream=True
    )
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()
    k = seen[-1].sequence_number
    response_id = seen[0].response.id
    wait_for(lambda: provider.is_held(gate))
    resumed: list = []
    reader = threading.Thread(
        target=lambda: resumed.extend(r2.client().responses.retrieve(response_id, stream=True, starting_after=k))
    )
    reader.start()
    provider.release(gate)  # the rest is written on r1 while r2 follows the log
    reader.join(60)
    events = seen + resumed
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "".join(
        f"w{i} " for i in range(20)
    )
    assert r2.client().responses.retrieve(response_id).output_text == events[-1].response.output_text


def test_a_background_response_is_cancelled_through_the_other_replica(replicas, provider):  # noqa: F811
    r1, r2 = replicas
    gate = unique("gate-cancel")
    response = r1.client().responses.create(model=MODEL, input=f"[chunks:20][gate:{gate}:3]", background=True)
    wait_for(lambda: provider.is_held(gate))
    cancelled = r2.client().responses.cancel(response.id)
    provider.release(gate)
    assert cancelled.status == "cancelled"
    assert r1.client().responses.retrieve(response.id).status == "cancelled"


def test_a_killed_replicas_background_response_is_ended_by_the_other(replicas):  # noqa: F811
    r1, r2 = replicas
    response = r1.client().responses.create(model=MODEL, input="[chunks:200][slow:0.1]", background=True)
    client = r2.client()
    wait_for(lambda: client.responses.retrieve(response.id).output)  # it is writing
    r1.stop(kill=True)  # kill -9 mid-response
    events = list(client.responses.retrieve(response.id, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.failed"
    ended = wait_for(lambda: (r := client.responses.retrieve(response.id)).status == "failed" and r, timeout=LEASE * 5)
    assert ended.error.code == "server_error"
