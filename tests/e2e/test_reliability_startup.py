"""Startup failures exit: a store out of reach is one clear line and a non-zero status."""

import json
import subprocess
import sys

from tests.conftest import ROOT, Server
from tests.scripted_llm import free_port


def test_an_unreachable_store_is_a_clear_error_and_a_non_zero_exit(provider, tmp_path):
    server = Server(tmp_path, provider, {"ASSISTD_STORE": f"cassandra://127.0.0.1:{free_port()}/nowhere"})
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "assistd ready" not in done.stdout
    last = json.loads(done.stderr.strip().splitlines()[-1])  # the driver logs its own retries before it
    assert last["logger"] == "assistd" and last["message"].startswith("cannot start: Cassandra is unavailable")
    assert "exception" not in last
