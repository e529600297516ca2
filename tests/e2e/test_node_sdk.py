"""The Node openai SDK (npm, installed by `make install`) as a second real client."""

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]  # runs on both stores

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def test_node_sdk_tool_round_trip_with_stream_helpers(server):
    result = subprocess.run(
        ["node", str(NODE_DIR / "tool_roundtrip.mjs")],
        cwd=NODE_DIR,
        env={**os.environ, "ASSISTD_BASE_URL": server.base_url, "ASSISTD_MODEL": MODEL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["waitingStatus"] == "requires_action"
    assert [c["id"] for c in seen["seen"]] == seen["requiredIds"] and len(seen["requiredIds"]) == 2
    assert [json.loads(c["arguments"]) for c in seen["seen"]] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert seen["text"] == "Results: 18C; 4C" == seen["storedAnswer"]
    assert seen["finalStatus"] == "completed"


def test_node_sdk_responses_stream_with_a_function_call_round_trip(server):
    result = subprocess.run(
        ["node", str(NODE_DIR / "responses_roundtrip.mjs")],
        cwd=NODE_DIR,
        env={**os.environ, "ASSISTD_BASE_URL": server.base_url, "ASSISTD_MODEL": MODEL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["firstStatus"] == "completed"
    (call,) = seen["calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert "".join(seen["argumentDeltas"]) == call["arguments"] and len(seen["argumentDeltas"]) > 1
    assert seen["text"] == "Results: 18C" == seen["outputText"]
    assert len(seen["sequence"]) > 5 and seen["sequence"] == list(range(len(seen["sequence"])))
