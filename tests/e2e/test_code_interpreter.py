"""code_interpreter through the openai SDK: the scripted model calls the `python` tool, assistd runs
the code in the thread's sandbox session, streams the code and its output as step deltas, and the
model's answer quotes what it read. Escapes tried through the server fail, and it stays healthy."""

import shutil
import tempfile
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest
from openai.types.beta.threads import Run

from tests.conftest import MODEL, PLAIN_MODEL, Server, cassandra_url, drop_keyspace, wait_for

STORES = ["sqlite", "cassandra"]
SECRET = f"secret-{uuid.uuid4().hex}"
CSV = b"region,amount\nnorth,10\nsouth,32\nnorth,5\n"


@pytest.fixture(scope="module")
def sandbox_dir():
    root = Path(tempfile.mkdtemp(prefix="assistd-e2e-boxes-"))  # pytest's tmp dirs are private to root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory, sandbox_dir, store_kind):
    store = {"ASSISTD_STORE": cassandra_url()} if store_kind == "cassandra" else {}
    env = {
        **store,
        "ASSISTD_SANDBOX_DIR": str(sandbox_dir),
        "ASSISTD_SANDBOX_CPU_SECONDS": "2",
        "ASSISTD_SANDBOX_WALL_SECONDS": "8",
        "ASSISTD_SANDBOX_OUTPUT_BYTES": "5000",
        "ASSISTD_API_KEYS": "test-key=tenant-a,other-key=tenant-b",
        "ASSISTD_TEST_SERVER_SECRET": SECRET,
    }
    srv = Server(tmp_path_factory.mktemp("assistd-code"), provider, env).start()
    yield srv
    srv.stop()
    if store:
        drop_keyspace(store["ASSISTD_STORE"])


@pytest.fixture
def client(server):
    return server.client()


def coder(client, **kwargs):
    return client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}], **kwargs)


def python(code: str, marker: str) -> str:
    return f"{marker} [python]{code}[/python]"


def answer_of(client, thread_id: str) -> str:
    message = client.beta.threads.messages.list(thread_id, order="desc", limit=1).data[0]
    return "".join(part.text.value for part in message.content if part.type == "text")


def run_code(client, assistant_id: str, code: str, marker: str) -> tuple[str, Run]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": python(code, marker)}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50)
    return answer_of(client, thread.id), run


def assert_healthy(server, client, assistant_id: str, marker: str) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/healthz") as response:
        assert response.status == 200
    assert server.process.poll() is None
    answer, run = run_code(client, assistant_id, "print(6 * 7)", f"{marker}-after")
    assert run.status == "completed" and answer == "Results: 42\n"


def test_code_reads_an_uploaded_csv_streams_its_code_and_logs_and_the_answer_quotes_the_number(client, marker):
    csv = client.files.create(file=("sales.csv", CSV), purpose="assistants")
    assistant = coder(client, tool_resources={"code_interpreter": {"file_ids": [csv.id]}})
    code = "import pandas as pd\ndf = pd.read_csv('sales.csv')\ntotal = int(df['amount'].sum())\nprint('total:', total)"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": python(code, marker)}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = list(stream)
        steps = stream.get_final_run_steps()
        messages = stream.get_final_messages()
    assert events[-1].event == "thread.run.completed"
    fragments = [
        call
        for event in events
        if event.event == "thread.run.step.delta" and event.data.delta.step_details.type == "tool_calls"
        for call in event.data.delta.step_details.tool_calls or []
    ]
    assert {call.type for call in fragments} == {"code_interpreter"}
    assert len([f for f in fragments if f.code_interpreter.input]) > 1  # the code streamed in pieces
    assert "".join(f.code_interpreter.input or "" for f in fragments) == code
    streamed_outputs = [o for f in fragments for o in f.code_interpreter.outputs or []]
    assert [(o.type, o.index, o.logs) for o in streamed_outputs] == [("logs", 0, "total: 47\n")]
    (tool_step,) = [step for step in steps if step.type == "tool_calls"]  # the SDK's snapshot from the deltas
    (completed,) = [e.data for e in events if e.event == "thread.run.step.completed" and e.data.type == "tool_calls"]
    for step in (tool_step, completed):
        (call,) = step.step_details.tool_calls
        assert call.type == "code_interpreter" and call.id.startswith("call_")
        assert call.code_interpreter.input == code
        assert [(o.type, o.logs) for o in call.code_interpreter.outputs] == [("logs", "total: 47\n")]
    assert completed.status == "completed" and completed.usage is not None
    assert messages[-1].content[0].text.value == "Results: total: 47\n"
    # the stored step reads back the same through the API
    listed = client.beta.threads.runs.steps.list(events[-1].data.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in listed] == ["tool_calls", "message_creation"]
    assert listed[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs == "total: 47\n"

    # A second run on the thread finds the first run's variables in the session.
    client.beta.threads.messages.create(thread.id, role="user", content=python("print(total * 2)", f"{marker}-2"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    assert answer_of(client, thread.id) == "Results: 94\n"


def test_a_plot_becomes_an_image_output_and_an_image_file_part_that_downloads_as_png(client, marker):
    assistant = coder(client)
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 1])\nplt.title('sales')"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": python(code, marker)}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    message = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
    assert [part.type for part in message.content] == ["image_file", "text"]
    file_id = message.content[0].image_file.file_id
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    outputs = steps[0].step_details.tool_calls[0].code_interpreter.outputs
    assert [o.type for o in outputs] == ["logs", "image"] and outputs[1].image.file_id == file_id
    image = client.files.content(file_id).read()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 1000
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    assert file_id in [f.id for f in client.files.list(purpose="assistants_output")]


def test_a_file_written_as_png_is_an_image_output_too(client, marker):
    assistant = coder(client)
    code = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.savefig('bars.png')\nplt.close()"
    answer, run = run_code(client, assistant.id, code, marker)
    assert run.status == "completed"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data
    (image,) = steps[0].step_details.tool_calls[0].code_interpreter.outputs
    assert image.type == "image" and client.files.content(image.image.file_id).read().startswith(b"\x89PNG")


def test_assistants_output_is_not_an_upload_purpose(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.png", b"\x89PNG"), purpose="assistants_output")
    assert info.value.param == "purpose" and info.value.code == "invalid_value"


def test_a_cancel_stops_the_code_and_the_thread_runs_code_again(client, marker):
    assistant = coder(client)
    code = "import time\ntime.sleep(600)"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": python(code, marker)}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    def code_written():
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
        calls = [call for step in steps if step.type == "tool_calls" for call in step.step_details.tool_calls]
        return calls and calls[0].code_interpreter.input == code

    wait_for(code_written)
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    run = wait_for(
        lambda: (r := client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status != "cancelling" and r
    )
    assert run.status == "cancelled"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.status == "cancelled" and step.step_details.tool_calls[0].code_interpreter.outputs == []
    client.beta.threads.messages.create(thread.id, role="user", content=python("print('after')", f"{marker}-2"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed" and answer_of(client, thread.id) == "Results: after\n"


def test_code_and_a_function_called_in_one_turn_the_client_answers_only_the_function(client, marker):
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}, lookup])
    content = f"{python('print(2 + 3)', marker)} [call:lookup:{{}}]"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action"
    (pending,) = run.required_action.submit_tool_outputs.tool_calls
    assert pending.type == "function" and pending.function.name == "lookup"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    code_call, function_call = step.step_details.tool_calls
    assert code_call.code_interpreter.outputs[0].logs == "5\n" and function_call.id == pending.id
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": pending.id, "output": "found"}],
        poll_interval_ms=50,
    )
    assert run.status == "completed" and answer_of(client, thread.id) == "Results: 5\n; found"


def test_deleting_the_thread_deletes_its_session_files(client, sandbox_dir, marker):
    assistant = coder(client)
    marker_file = f"{marker}.txt"
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": python(f"open('{marker_file}', 'w').write('x')", marker)}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    assert list(sandbox_dir.glob(f"process-*/*/{marker_file}"))
    assert client.beta.threads.delete(thread.id).deleted
    assert not list(sandbox_dir.glob(f"process-*/*/{marker_file}"))


def test_a_model_without_native_tool_calls_runs_code_too(client, marker):
    assistant = client.beta.assistants.create(model=PLAIN_MODEL, tools=[{"type": "code_interpreter"}])
    answer, run = run_code(client, assistant.id, "print(sum(range(10)))", marker)
    assert run.status == "completed" and answer == "Results: 45\n"


def test_a_file_the_answer_links_gets_a_file_path_annotation_and_downloads(client, marker):
    assistant = coder(client)
    code = (
        "open('report.csv', 'w').write('region,total\\nnorth,15\\n')\nprint('[report](sandbox:/mnt/data/report.csv).')"
    )
    answer, run = run_code(client, assistant.id, code, marker)
    assert run.status == "completed" and answer == "Results: [report](sandbox:/mnt/data/report.csv).\n"
    message = client.beta.threads.messages.list(run.thread_id, order="desc", limit=1).data[0]
    (annotation,) = message.content[0].text.annotations
    assert annotation.type == "file_path" and annotation.text == "sandbox:/mnt/data/report.csv"
    assert answer[annotation.start_index : annotation.end_index] == annotation.text
    assert client.files.content(annotation.file_path.file_id).read() == b"region,total\nnorth,15\n"
    file = client.files.retrieve(annotation.file_path.file_id)
    assert (file.filename, file.purpose) == ("report.csv", "assistants_output")


def test_a_file_attached_to_a_message_for_code_interpreter_is_in_the_work_dir(client, marker):
    csv = client.files.create(file=("attached.csv", CSV), purpose="assistants")
    assistant = coder(client)
    code = "import os\nprint(sorted(os.listdir('.')), open('attached.csv').read().count('north'))"
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": python(code, marker),
                "attachments": [{"file_id": csv.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    assert answer_of(client, thread.id) == "Results: ['attached.csv'] 2\n"


ESCAPES = {
    "environment": (
        "import os\nprint(dict(os.environ))\n"
        "print([open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') if p.isdigit()])",
        "MPLBACKEND",
    ),
    "files": (
        "for path in ['/etc/shadow', '/proc/1/root/etc/hostname', '__DB__']:\n"
        "    try:\n        print(open(path).read())\n    except OSError as e:\n        print(type(e).__name__)",
        "FileNotFoundError\nFileNotFoundError\nFileNotFoundError",
    ),
    "network": (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', __PORT__), timeout=3)\n    print('connected')\n"
        "except OSError as e:\n    print(type(e).__name__)",
        "ConnectionRefusedError",
    ),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", "Resource temporarily unavailable"),
    "memory": ("block = bytearray(4 * 1024 ** 3)", "MemoryError"),
    "cpu time": ("while True:\n    pass", "CPU time limit exceeded"),
    "wall time": ("import time\ntime.sleep(600)", "8-second time limit"),
    "output": ("print('x' * 100_000)", "[output truncated: more than 5000 bytes]"),
}


@pytest.mark.parametrize("escape", list(ESCAPES))
def test_an_escape_fails_as_tool_output_and_the_server_stays_healthy(server, client, marker, escape):
    code, expected = ESCAPES[escape]
    code = code.replace("__DB__", str(server.db)).replace("__PORT__", str(server.http_port))
    assistant = coder(client)
    answer, run = run_code(client, assistant.id, code, marker)
    assert run.status == "completed"
    assert expected in answer, answer
    assert SECRET not in answer and "test-key" not in answer and "connected" not in answer
    assert_healthy(server, client, assistant.id, marker)


def test_another_tenants_session_files_cannot_be_reached(server, client, sandbox_dir, marker):
    assistant = coder(client)
    answer, _ = run_code(client, assistant.id, "open('mine.txt', 'w').write('tenant a data')", marker)
    (work_dir,) = [path.parent for path in sandbox_dir.glob("process-*/*/mine.txt")]
    other = server.client().with_options(api_key="other-key")
    other_assistant = coder(other)
    code = (
        "import os\nprint(os.listdir('.'))\n"
        f"for path in ['{work_dir}/mine.txt', '../{work_dir.name}/mine.txt']:\n"
        "    try:\n        print(open(path).read())\n    except OSError as e:\n        print(type(e).__name__)"
    )
    answer, run = run_code(other, other_assistant.id, code, f"{marker}-b")
    assert run.status == "completed"
    assert answer == "Results: []\nFileNotFoundError\nFileNotFoundError\n"
    assert_healthy(server, client, assistant.id, marker)
