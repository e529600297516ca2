"""The gRPC clients in other languages, against a live `assistd serve`: the Go module's tests
(clients/go) and the Node @grpc/grpc-js example, each a function-call round trip and a WatchRun
resume. Their toolchains and dependencies are installed by `make install` (pinned, cached in .cache)."""

import json
import os
import subprocess

from tests.conftest import MODEL, ROOT, go, go_env

GO_TESTS = {"TestFunctionCallRoundTrip", "TestWatchRunResumesAfterTheLastEventSeen", "TestErrorsCarryErrorInfo"}


def test_the_go_client_round_trips_a_function_call_and_resumes_a_watch(server):
    result = subprocess.run(
        [go(), "test", "-count=1", "-json", "./..."],
        cwd=ROOT / "clients" / "go",
        env={**go_env(), "ASSISTD_GRPC_TARGET": server.grpc_target, "ASSISTD_MODEL": MODEL},
        capture_output=True,
        text=True,
        timeout=300,
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    outcomes = {e["Test"]: e["Action"] for e in events if e.get("Test") and e["Action"] in ("pass", "fail", "skip")}
    output = "".join(e.get("Output", "") for e in events)
    assert result.returncode == 0, output + result.stderr
    assert outcomes == {name: "pass" for name in GO_TESTS}, output  # each ran and passed: none skipped


def test_the_node_grpc_example_round_trips_a_function_call_and_resumes_a_watch(server):
    example = ROOT / "examples" / "grpc" / "node"
    result = subprocess.run(
        ["node", "round_trip.mjs"],
        cwd=example,
        env={**os.environ, "ASSISTD_GRPC_TARGET": server.grpc_target, "ASSISTD_MODEL": MODEL},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["requiredCall"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert report["answer"] == "Results: 4C" and report["finalStatus"] == "completed"
    assert report["resumedFrom"] >= 1 and report["sequence"] == list(range(1, report["events"] + 1))
    assert report["watchedText"] == "".join(f"w{i} " for i in range(30))
    assert report["watchEndsWith"] == ["RUN_STATUS_COMPLETED", "RUN_EVENT_TYPE_DONE"]
