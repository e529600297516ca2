"""Every program in examples/ runs against a live `assistd serve` with the scripted model: the
three of OpenAI's Assistants streaming announcement, file_search, code_interpreter, and a gRPC program per
language (Go and Node are in test_clients.py too, for their round trip and resume). A program
takes its question as an argument; here the question carries the scripted model's directives."""

import json
import os
import subprocess
import sys

from tests.conftest import MODEL, ROOT, go, go_env

EXAMPLES = ROOT / "examples"


def _run(server, *command, cwd=ROOT, env=None) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={
            **(env or os.environ),
            "ASSISTD_BASE_URL": server.base_url,
            "ASSISTD_GRPC_TARGET": server.grpc_target,
            "ASSISTD_MODEL": MODEL,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_streaming_with_create_and_stream_and_text_deltas(server):
    out = _run(server, sys.executable, EXAMPLES / "openai" / "streaming.py", "[reply:x = 1, Jane Doe.]")
    assert out.splitlines()[0] == "x = 1, Jane Doe."
    assert out.splitlines()[-1].startswith("[run completed, ") and out.splitlines()[-1].endswith(" tokens]")


def test_an_event_handler_sees_the_text_and_the_tool_calls(server):
    question = '[call:file_search:{"queries": ["paid leave"]}] How many days of leave?'
    out = _run(server, sys.executable, EXAMPLES / "openai" / "event_handler.py", question)
    lines = out.splitlines()
    assert "assistant > file_search" in lines
    assert any(line.startswith("[file_search call call_") and line.endswith(" done]") for line in lines)
    answer = out[out.index("assistant > Results: ") :]  # the scripted model answers with the search results
    assert answer.startswith("assistant > Results: 【0†handbook.md】") and "25 days of paid leave" in answer
    assert "[cites 1 file(s)]" in lines and lines[-1] == "[run completed]"


def test_function_calling_submits_outputs_from_the_event_handler(server):
    question = (
        '[call:get_current_temperature:{"location": "San Francisco, CA", "unit": "Fahrenheit"}]'
        '[call:get_rain_probability:{"location": "San Francisco, CA"}]'
    )
    out = _run(server, sys.executable, EXAMPLES / "openai" / "function_calling.py", question)
    assert out.splitlines() == [
        '[calls get_current_temperature({"location": "San Francisco, CA", "unit": "Fahrenheit"})]',
        '[calls get_rain_probability({"location": "San Francisco, CA"})]',
        "Results: 57; 0.06",
        "[run completed]",
    ]


def test_file_search_answers_with_citations_and_results(server):
    question = '[call:file_search:{"queries": ["Saturn moons"]}] Which planet has the most moons?'
    out = _run(server, sys.executable, EXAMPLES / "openai" / "file_search.py", question)
    lines = out.splitlines()
    assert lines[0] == "[2 of 2 files ingested]" and lines[1].startswith("[search: saturn.md scores 1.00]")
    assert "[【0†saturn.md】 cites saturn.md]" in lines  # the best hit is source 0
    assert "[【1†mars.md】 cites mars.md]" in lines
    assert lines[-3:] == ["[result saturn.md: # Saturn]", "[result mars.md: # Mars]", "[run completed]"]


def test_code_interpreter_streams_the_code_its_output_and_saves_the_chart(server, tmp_path):
    code = (
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\ntotals = df.groupby('region')['amount'].sum()\n"
        "print(totals.to_dict())\n_ = totals.plot.bar()"
    )
    out = _run(
        server, sys.executable, EXAMPLES / "openai" / "code_interpreter.py", f"[python]{code}[/python]", cwd=tmp_path
    )
    assert f"assistant > code_interpreter\n\n{code}\n\noutput >\n{{'north': 215, 'south': 210}}\n" in out
    assert "\nimage > file-" in out and "assistant > Results: {'north': 215, 'south': 210}" in out
    assert "[run completed]" in out and out.rstrip().endswith("saved to chart.png]")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_the_python_grpc_example(server):
    report = json.loads(_run(server, sys.executable, EXAMPLES / "grpc" / "python" / "round_trip.py").splitlines()[-1])
    assert report["requiredCall"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert report["answer"] == "Results: 4C" and report["finalStatus"] == "RUN_STATUS_COMPLETED"
    assert report["sequence"] == list(range(1, len(report["sequence"]) + 1)) and report["resumedFrom"] == 8
    assert report["watchedText"] == "".join(f"w{i} " for i in range(30))
    assert report["watchEnd"] == ["RUN_STATUS_COMPLETED", "RUN_EVENT_TYPE_DONE"]


def test_the_go_example_streams_a_run_in_thirty_lines(server):
    out = _run(server, go(), "run", ".", "[reply:three primes: 2, 3, 5]", cwd=EXAMPLES / "grpc" / "go", env=go_env())
    first, second = out.splitlines()
    assert first == "three primes: 2, 3, 5" and second.startswith("RUN_STATUS_COMPLETED, ")
