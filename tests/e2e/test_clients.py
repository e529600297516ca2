"""The gRPC clients in other languages, against a live `assistd serve`: the Go module's tests
(clients/go), the Node @grpc/grpc-js example and the Java grpc-java example, each a function-call
round trip and a WatchRun resume. Their toolchains and dependencies are installed by `make install`
(pinned, cached in .cache); the Java example's jar is built there too, so its test runs offline."""

import json
import os
import subprocess
from pathlib import Path

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


def run_example(command: list[str], cwd: Path, server) -> dict:
    """Runs an example against the server and returns the JSON report on its last line."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "ASSISTD_GRPC_TARGET": server.grpc_target, "ASSISTD_MODEL": MODEL},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_round_trip_and_resume(report: dict) -> None:
    assert report["waitingStatus"] == "RUN_STATUS_REQUIRES_ACTION"
    assert report["requiredCall"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert report["answer"] == "Results: 4C" and report["finalStatus"] == "completed"
    assert report["resumedFrom"] >= 1 and report["sequence"] == list(range(1, report["events"] + 1))
    assert report["watchedText"] == "".join(f"w{i} " for i in range(30))
    assert report["watchEndsWith"] == ["RUN_STATUS_COMPLETED", "RUN_EVENT_TYPE_DONE"]


def test_the_node_grpc_example_round_trips_a_function_call_and_resumes_a_watch(server):
    report = run_example(["node", "round_trip.mjs"], ROOT / "examples" / "grpc" / "node", server)
    assert_round_trip_and_resume(report)


def test_the_java_grpc_example_round_trips_a_function_call_and_resumes_a_watch(server):
    example = ROOT / "examples" / "grpc" / "java"
    jar = example / "target" / "round-trip.jar"  # built by `make install` (make java-example)
    assert jar.is_file(), f"{jar} is missing: run `make java-example`"
    report = run_example(["java", "-jar", str(jar)], example, server)
    assert_round_trip_and_resume(report)
