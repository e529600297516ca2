"""schemathesis against a live edge's /openapi.json: the command line, and what its summary says.
Shared by tests/e2e/test_openapi.py (bounded, in `make test`) and the bench's fuzz section (longer)."""

import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Every response must not be a 5xx, must have a status the document lists for its operation, and
# (for JSON) must match the schema the document gives it: the SDK's own types.
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
API_KEY = "fuzz-key"


def command(
    base_url: str, max_examples: int, report_dir: Path, workers: int = 1, config: Path | None = None
) -> list[str]:
    """`st run` on base_url's document: every phase (examples, coverage, fuzzing, and stateful along
    the document's links), positive and negative inputs, deterministic (same cases every run, no
    example database). One worker: with two threads, Hypothesis describing a strategy calls
    ast.parse concurrently, and CPython 3.11.7's AST constructor then fails with "SystemError: AST
    constructor recursion depth mismatch" (a Runtime Error in the run, not a finding about assistd)."""
    origin = base_url.removesuffix("/v1")
    return [
        str(Path(sys.executable).with_name("st")),
        *(["--config-file", str(config)] if config is not None else []),
        "run",
        f"{origin}/openapi.json",
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--generation-deterministic",
        "--workers",
        str(workers),
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]


@dataclass
class Result:
    returncode: int
    output: str
    cases: int  # test cases generated and sent
    failures: int  # unique failures schemathesis reported
    seconds: float

    def failed(self) -> list[str]:
        """What failed, as the summary lists it: operations (e.g. `POST /v1/files`), then kinds of failure."""
        body = self.output[self.output.find("== FAILURES ==") :] if "== FAILURES ==" in self.output else ""
        operations = re.findall(r"^_+ ([A-Z]+ /\S*) _+$", body, re.M)
        kinds = re.findall(r"^\s*(?:❌|🚫) (.+: \d+)$", self.output[self.output.rfind("SUMMARY") :], re.M)
        return [*dict.fromkeys(operations), *kinds]


def run(base_url: str, max_examples: int, report_dir: Path, timeout: float, config: Path | None = None) -> Result:
    args = command(base_url, max_examples, report_dir, config=config)
    # The edge builds its document on the first request (seconds on a loaded machine); st gives
    # the load 10 s, so the document is built before st starts.
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/openapi.json", timeout=300) as response:
        response.read()
    report_dir.mkdir(parents=True, exist_ok=True)
    # run in the report's folder: st keeps its own state in ./.schemathesis, out of the checkout
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=report_dir)
    output = done.stdout + done.stderr
    cases = re.search(r"Test cases:\s*\n\s*(\d+) generated", output)
    failures = re.search(r"found (\d+) unique failures", output)
    seconds = re.search(r" in ([\d.]+)s =+\s*$", output.strip())
    return Result(
        done.returncode,
        output,
        int(cases.group(1)) if cases else 0,
        int(failures.group(1)) if failures else 0,
        float(seconds.group(1)) if seconds else 0.0,
    )


def printable(args: list[str]) -> str:
    """The command as one shell line (the key quoted)."""
    return " ".join(f"'{a}'" if " " in a else a for a in ["st", *args[1:]])
