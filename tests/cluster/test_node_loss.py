"""Two assistd replicas on the three-node cluster (replication factor 3, LOCAL_QUORUM) while
Cassandra nodes die: one node lost mid-run loses nothing; two lost fail requests cleanly and
leave nothing half-written; service comes back with a node. Run by `make test-cluster`."""

import subprocess
import threading
from collections import Counter

import httpx
import openai
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

from service.auth import DEV_TENANT
from service.store.cassandra import parse_url
from tests.conftest import MODEL, ROOT, Server, cassandra_url, drop_keyspace, sse_frames, wait_for

CLUSTER = str(ROOT / "tools" / "cassandra" / "cluster.sh")
NODES = {1: "127.0.0.2", 2: "127.0.0.3", 3: "127.0.0.4"}
LEASE = 10  # longer than the few seconds a lost coordinator can stall a request
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
# Each test restarts Cassandra nodes (30-90 s each on a busy 2-core machine): past the suite's 300 s.
pytestmark = pytest.mark.timeout(1200)


def cluster(*args: str) -> str:
    done = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def all_nodes_up() -> None:
    """Starts whichever nodes are down (a test that failed half-way may have left some) and waits
    until all three see each other."""
    cluster("start")


@pytest.fixture
def replicas(provider, tmp_path):
    all_nodes_up()
    url = cassandra_url()
    assert "replication_factor=3" in url, "run by make test-cluster (ASSISTD_TEST_CASSANDRA_OPTIONS)"
    env = {"ASSISTD_STORE": url, "ASSISTD_RUN_LEASE_SECONDS": str(LEASE)}
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    pair = [Server(tmp_path / "r1", provider, env).start(), Server(tmp_path / "r2", provider, env).start()]
    yield pair
    for server in pair:
        server.stop()
    all_nodes_up()
    drop_keyspace(url)


def _frames(server, method, path, into: list, **kwargs) -> None:
    """The SSE frames of a request (comments left out), appended to `into` as they arrive."""
    with httpx.stream(method, server.base_url + path, timeout=120, **kwargs) as response:
        into.append({"status": str(response.status_code)})
        for frame in sse_frames(response.iter_lines()):
            if "comment" not in frame:
                into.append(frame)


def _events(frames: list) -> list:
    return [f for f in frames if "event" in f]


def _only_node(node: int, keyspace: str):
    """A session whose every request goes to one node at consistency ONE."""
    session = Cluster(
        [NODES[node]], load_balancing_policy=WhiteListRoundRobinPolicy([NODES[node]]), protocol_version=5
    ).connect(keyspace)
    return session


def test_a_node_killed_mid_run_loses_no_event_and_catches_up(replicas, provider):
    r1, r2 = replicas
    assistant = r1.client().beta.assistants.create(model=MODEL)
    chunks = 150
    streams, watches, threads = {}, {}, []
    for server in [r1, r2, r1, r2]:
        thread = server.client().beta.threads.create(
            messages=[{"role": "user", "content": f"[chunks:{chunks}][slow:0.02]"}]
        )
        frames: list = []
        streams[thread.id] = (server, frames)
        t = threading.Thread(
            target=_frames,
            args=(server, "POST", f"/threads/{thread.id}/runs", frames),
            kwargs={"json": {"assistant_id": assistant.id, "stream": True}},
        )
        t.start()
        threads.append(t)
    # every run is streaming; each gets a watcher on the other replica, from the start of its log
    wait_for(lambda: all(sum(f.get("event") == "thread.message.delta" for f in fr) >= 5 for _, fr in streams.values()))
    for thread_id, (server, frames) in streams.items():
        run_id = (
            next(f for f in frames if f.get("event") == "thread.run.created")["data"].split('"id":"')[1].split('"')[0]
        )
        other = r2 if server is r1 else r1
        watched: list = []
        watches[thread_id] = (run_id, watched)
        t = threading.Thread(
            target=_frames,
            args=(other, "GET", f"/threads/{thread_id}/runs/{run_id}/events", watched),
            kwargs={"headers": {"Last-Event-ID": "0"}},
        )
        t.start()
        threads.append(t)

    cluster("kill", "1")  # kill -9 the node the drivers met first, mid-stream

    for t in threads:
        t.join(180)
    for thread_id, (server, frames) in streams.items():
        run_id, watched = watches[thread_id]
        events = _events(frames)
        ids = [int(f["id"]) for f in events]
        assert ids == list(range(1, len(ids) + 1)), "lost or duplicated events"
        assert events[-1]["event"] == "done"
        assert sum(f["event"] == "thread.message.delta" for f in events) == chunks
        assert _events(watched) == events, "a watcher on the other replica saw something else"
        run = server.client().beta.threads.runs.retrieve(run_id=run_id, thread_id=thread_id)
        assert run.status == "completed"
    logs = {run_id: len(_events(streams[t][1])) for t, (run_id, _) in watches.items()}

    # The node comes back and gets what it missed (hints), with no help from reads: once the
    # others have no hints left for it, it alone (the other two stopped) holds every event.
    cluster("start-node", "1")
    all_nodes_up()
    wait_for(
        lambda: all("127.0.0.2" not in cluster("nodetool", str(n), "listpendinghints") for n in (2, 3)), timeout=120
    )
    keyspace = parse_url(r1.env["ASSISTD_STORE"])["keyspace"]
    cluster("stop-node", "2")
    cluster("stop-node", "3")
    session = _only_node(1, keyspace)
    try:
        for run_id, count in logs.items():
            rows = session.execute(
                SimpleStatement(
                    "SELECT seq FROM run_events WHERE tenant=%s AND run_id=%s", consistency_level=ConsistencyLevel.ONE
                ),
                (DEV_TENANT, run_id),
            )
            seqs = [row.seq for row in rows]
            assert seqs == list(range(1, count + 1)), f"node 1 missed events of {run_id}"
    finally:
        session.cluster.shutdown()


def test_two_nodes_lost_fail_requests_cleanly_and_service_resumes_with_one_back(replicas):
    r1, r2 = replicas
    client = r1.client()
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "[chunks:400][slow:0.02]"}])
    frames: list = []
    streamer = threading.Thread(
        target=_frames,
        args=(r1, "POST", f"/threads/{thread.id}/runs", frames),
        kwargs={"json": {"assistant_id": assistant.id, "stream": True}},
    )
    streamer.start()
    wait_for(lambda: sum(f.get("event") == "thread.message.delta" for f in frames) >= 5)
    run_id = client.beta.threads.runs.list(thread_id=thread.id).data[0].id

    cluster("kill", "2")
    cluster("kill", "3")

    failures = Counter()
    for server in (r1, r2):
        for call in (
            lambda c: c.beta.assistants.create(model=MODEL, name="never"),
            lambda c: c.beta.threads.create(messages=[{"role": "user", "content": "never"}]),
            lambda c: c.beta.threads.runs.retrieve(run_id=run_id, thread_id=thread.id),
        ):
            with pytest.raises(openai.APIStatusError) as caught:
                call(server.client())
            assert caught.value.status_code == 503
            assert "temporarily unavailable" in caught.value.message
            failures[caught.value.status_code] += 1
    assert failures == {503: 6}

    cluster("start-node", "2")  # two of three again: a quorum
    resumed = wait_for(lambda: _succeeds(lambda: r2.client().beta.assistants.create(model=MODEL)), timeout=90)
    assert resumed.id
    # nothing half-written: neither refused create left an assistant; the run ends, not stuck, and
    # its log is whole (gap-free, one done at its end)
    names = [a.name for a in r2.client().beta.assistants.list(limit=100).data]
    assert "never" not in names
    final = wait_for(
        lambda: (
            (r := _succeeds(lambda: r2.client().beta.threads.runs.retrieve(run_id=run_id, thread_id=thread.id)))
            and r.status in TERMINAL
            and r
        ),
        timeout=LEASE * 8,
    )
    streamer.join(120)
    replay: list = []
    _frames(r2, "GET", f"/threads/{thread.id}/runs/{run_id}/events", replay, headers={"Last-Event-ID": "0"})
    events = _events(replay)
    ids = [int(f["id"]) for f in events]
    assert ids == list(range(1, len(ids) + 1))
    assert [f["event"] for f in events].count("done") == 1 and events[-1]["event"] == "done"
    assert final.status in ("completed", "failed")  # not stuck in_progress with its owner alive
    again = r2.client().beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "[reply:back]"}],
        poll_interval_ms=50,
    )
    assert again.status == "completed"


def _succeeds(call):
    try:
        return call()
    except (openai.APIStatusError, openai.APIConnectionError):
        return None
