"""code_interpreter on the Responses API, and the Containers API, through the openai SDK: the
scripted model calls the `python` tool, assistd runs the code in the response's container
(auto, or one made with client.containers), and the response carries code_interpreter_call
items, their stream events in OpenAI's order, container files and container_file_citation
annotations. Containers keep Python state and files across responses, expire when idle, and are
invisible to other tenants."""

import shutil
import tempfile
import uuid
from pathlib import Path

import openai
import pytest

from service.sandbox.sessions import session_id
from tests.conftest import MODEL, Server, cassandra_url, drop_keyspace, wait_for

STORES = ["sqlite", "cassandra"]
CSV = b"region,amount\nnorth,10\nsouth,32\nnorth,5\n"
SUM_CODE = "import pandas as pd\ndf = pd.read_csv('sales.csv')\ntotal = int(df['amount'].sum())\nprint('total:', total)"
MINUTE_SECONDS = 5  # a minute of expires_after lasts this long here, so expiry can be seen


@pytest.fixture(scope="module")
def sandbox_dir():
    root = Path(tempfile.mkdtemp(prefix="assistd-e2e-containers-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory, sandbox_dir, store_kind):
    store = {"ASSISTD_STORE": cassandra_url()} if store_kind == "cassandra" else {}
    env = {
        **store,
        "ASSISTD_SANDBOX_DIR": str(sandbox_dir),
        "ASSISTD_SANDBOX_WALL_SECONDS": "30",
        "ASSISTD_CONTAINER_MINUTE_SECONDS": str(MINUTE_SECONDS),
        "ASSISTD_API_KEYS": "test-key=tenant-a,other-key=tenant-b",
    }
    srv = Server(tmp_path_factory.mktemp("assistd-containers"), provider, env).start()
    yield srv
    srv.stop()
    if store:
        drop_keyspace(store["ASSISTD_STORE"])


@pytest.fixture
def client(server):
    return server.client()


def python(code: str, marker: str) -> str:
    return f"{marker} [python]{code}[/python]"


def auto(*file_ids: str) -> list:
    return [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": list(file_ids)}}]


def file_id_of(url: str) -> str:
    """The container file id in an image output's url (/v1/containers/C/files/F/content)."""
    return url.split("/files/")[1].removesuffix("/content")


def test_code_reads_a_csv_in_an_auto_container_and_the_answer_quotes_the_total(client, marker):
    csv = client.files.create(file=("sales.csv", CSV), purpose="user_data")
    response = client.responses.create(
        model=MODEL,
        input=python(SUM_CODE, marker),
        tools=auto(csv.id),
        include=["code_interpreter_call.outputs"],
    )
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.id.startswith("ci_") and call.status == "completed"
    assert call.code == SUM_CODE
    assert [(o.type, o.logs) for o in call.outputs] == [("logs", "total: 47\n")]
    assert call.container_id.startswith("cntr_")
    assert message.type == "message" and response.output_text == "Results: total: 47\n"
    assert response.tools[0].type == "code_interpreter"
    # retrieve renders the same; without include the outputs are null
    assert client.responses.retrieve(response.id).output[0].outputs == call.outputs
    # the auto container is a container: listed with the CSV copied in
    container = client.containers.retrieve(call.container_id)
    assert container.name == "auto" and container.status == "running"
    assert container.expires_after.anchor == "last_active_at" and container.expires_after.minutes == 20
    files = client.containers.files.list(call.container_id).data
    assert [(f.path, f.source, f.bytes) for f in files] == [("/mnt/data/sales.csv", "user", len(CSV))]

    # The next response of the chain uses the same container: the variable is still there.
    second = client.responses.create(
        model=MODEL, input=python("print(total * 2)", f"{marker}-2"), previous_response_id=response.id, tools=auto()
    )
    assert second.output[0].container_id == call.container_id
    assert second.output[0].outputs is None  # not asked for with include
    assert second.output_text == "Results: 94\n"


def test_the_stream_sends_code_interpreter_events_in_openai_order(client, marker):
    code = "x = 6 * 7\nprint('answer', x)"
    with client.responses.stream(
        model=MODEL, input=python(code, marker), tools=auto(), include=["code_interpreter_call.outputs"]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    code_deltas = [e for e in events if e.type == "response.code_interpreter_call_code.delta"]
    assert len(code_deltas) > 1 and "".join(e.delta for e in code_deltas) == code
    folded = [t for i, t in enumerate(types) if not (t.endswith(".delta") and i and types[i - 1] == t)]
    assert folded == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, done = events[2], events[types.index("response.output_item.done")]
    assert added.item.type == "code_interpreter_call" and added.item.status == "in_progress" and added.item.code == ""
    item_id = added.item.id
    for event in events[3:9]:
        assert event.item_id == item_id and event.output_index == 0
    assert events[types.index("response.code_interpreter_call_code.done")].code == code
    assert done.item.status == "completed" and done.item.code == code
    assert [(o.type, o.logs) for o in done.item.outputs] == [("logs", "answer 42\n")]
    assert final.output[0].model_dump() == done.item.model_dump()
    assert final.output_text == "Results: answer 42\n"
    again = client.responses.retrieve(final.id)
    assert again.output[0].model_dump() == done.item.model_dump() and again.output_text == final.output_text


def test_a_plot_is_an_image_output_and_a_container_file_that_downloads_as_png(client, marker):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 1])\nplt.title('sales')"
    response = client.responses.create(
        model=MODEL, input=python(code, marker), tools=auto(), include=["code_interpreter_call.outputs"]
    )
    call = response.output[0]
    assert [o.type for o in call.outputs] == ["logs", "image"]
    url = call.outputs[1].url
    assert url.startswith(f"/v1/containers/{call.container_id}/files/cfile_") and url.endswith("/content")
    image = client.containers.files.content.retrieve(file_id_of(url), container_id=call.container_id).read()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 1000
    listed = client.containers.files.retrieve(file_id_of(url), container_id=call.container_id)
    assert listed.source == "assistant" and listed.path.endswith(".png") and listed.bytes == len(image)


def test_a_file_the_code_writes_is_a_container_file_cited_in_the_answer(client, marker):
    code = "open('report.txt', 'w').write('north 15\\nsouth 32\\n')\nprint('see sandbox:/mnt/data/report.txt')"
    response = client.responses.create(model=MODEL, input=python(code, marker), tools=auto())
    text = response.output_text
    assert text == "Results: see sandbox:/mnt/data/report.txt\n"
    (annotation,) = response.output[1].content[0].annotations
    assert annotation.type == "container_file_citation"
    assert annotation.container_id == response.output[0].container_id and annotation.filename == "report.txt"
    assert text[annotation.start_index : annotation.end_index] == "sandbox:/mnt/data/report.txt"
    content = client.containers.files.content.retrieve(annotation.file_id, container_id=annotation.container_id)
    assert content.read() == b"north 15\nsouth 32\n"
    (written,) = [f for f in client.containers.files.list(annotation.container_id).data if f.id == annotation.file_id]
    assert written.path == "/mnt/data/report.txt" and written.source == "assistant"


def test_containers_and_their_files_round_trip(client):
    name = f"box-{uuid.uuid4().hex[:8]}"
    container = client.containers.create(name=name, expires_after={"anchor": "last_active_at", "minutes": 10})
    assert container.id.startswith("cntr_") and container.object == "container" and container.name == name
    assert container.status == "running" and container.expires_after.minutes == 10
    assert container.last_active_at >= container.created_at
    assert client.containers.retrieve(container.id).model_dump() == container.model_dump()
    assert container.id in [c.id for c in client.containers.list(limit=100).data]
    assert [c.id for c in client.containers.list(name=name).data] == [container.id]

    uploaded = client.containers.files.create(container.id, file=("notes.txt", b"hello container"))
    assert uploaded.id.startswith("cfile_") and uploaded.object == "container.file"
    assert (uploaded.container_id, uploaded.path, uploaded.source, uploaded.bytes) == (
        container.id,
        "/mnt/data/notes.txt",
        "user",
        15,
    )
    source = client.files.create(file=("sales.csv", CSV), purpose="user_data")
    copied = client.containers.files.create(container.id, file_id=source.id)
    assert copied.path == "/mnt/data/sales.csv" and copied.bytes == len(CSV)
    listed = client.containers.files.list(container.id, order="asc").data
    assert [f.id for f in listed] == [uploaded.id, copied.id]
    assert (
        client.containers.files.retrieve(uploaded.id, container_id=container.id).model_dump() == uploaded.model_dump()
    )
    content = client.containers.files.content.retrieve(copied.id, container_id=container.id)
    assert content.read() == CSV

    client.containers.files.delete(uploaded.id, container_id=container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=container.id)
    assert [f.id for f in client.containers.files.list(container.id).data] == [copied.id]

    client.containers.delete(container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.list(container.id)


def test_bad_container_requests_are_openai_errors_and_change_nothing(client):
    before = [c.id for c in client.containers.list(limit=100).data]
    with pytest.raises(openai.BadRequestError) as error:
        client.containers.create(name="x", expires_after={"anchor": "last_active_at", "minutes": 0})
    assert error.value.body["param"] == "expires_after.minutes"
    with pytest.raises(openai.NotFoundError):
        client.containers.create(name="x", file_ids=["file-missing"])
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "code_interpreter"}])
    assert error.value.body["param"] == "tools[0].container"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "code_interpreter", "container": "cntr_nope"}])
    assert [c.id for c in client.containers.list(limit=100).data] == before


def test_an_explicit_container_sees_its_uploaded_file_and_keeps_python_state_across_responses(client, marker):
    container = client.containers.create(name="analysis")
    client.containers.files.create(container.id, file=("numbers.txt", b"3\n4\n5\n"))
    tools = [{"type": "code_interpreter", "container": container.id}]
    code = "values = [int(line) for line in open('numbers.txt')]\nprint(sum(values))"
    first = client.responses.create(model=MODEL, input=python(code, marker), tools=tools)
    assert first.output[0].container_id == container.id and first.output_text == "Results: 12\n"
    # a second, unchained response (its own thread) in the same container: `values` is still defined
    second = client.responses.create(model=MODEL, input=python("print(max(values))", f"{marker}-2"), tools=tools)
    assert second.output[0].container_id == container.id and second.output_text == "Results: 5\n"
    assert first.previous_response_id is None and second.previous_response_id is None


def test_an_idle_container_expires_its_session_and_files_gone(client, server, sandbox_dir, marker):
    container = client.containers.create(name="short", expires_after={"anchor": "last_active_at", "minutes": 1})
    client.containers.files.create(container.id, file=("a.txt", b"a"))
    tools = [{"type": "code_interpreter", "container": container.id}]
    response = client.responses.create(model=MODEL, input=python("print(open('a.txt').read())", marker), tools=tools)
    assert response.output_text == "Results: a\n"
    work_dirs = list(sandbox_dir.glob(f"process-*/{session_id('tenant-a', container.id)}"))
    assert len(work_dirs) == 1  # its live session
    assert wait_for(lambda: client.containers.retrieve(container.id).status == "expired", timeout=60)
    assert client.containers.files.list(container.id).data == []
    assert not work_dirs[0].exists()
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=python("print(1)", f"{marker}-2"), tools=tools)
    assert "expired" in error.value.message
    with pytest.raises(openai.BadRequestError):
        client.containers.files.create(container.id, file=("b.txt", b"b"))


def test_another_tenant_cannot_see_or_use_a_container(client, server, marker):
    container = client.containers.create(name="private")
    secret = client.containers.files.create(container.id, file=("secret.txt", b"tenant a only"))
    other = openai.OpenAI(base_url=server.base_url, api_key="other-key", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.containers.retrieve(container.id)
    assert container.id not in [c.id for c in other.containers.list(limit=100).data]
    with pytest.raises(openai.NotFoundError):
        other.containers.files.list(container.id)
    with pytest.raises(openai.NotFoundError):
        other.containers.files.content.retrieve(secret.id, container_id=container.id)
    with pytest.raises(openai.NotFoundError):
        other.containers.files.create(container.id, file=("x.txt", b"x"))
    with pytest.raises(openai.NotFoundError):
        other.responses.create(
            model=MODEL,
            input=python("print(open('secret.txt').read())", marker),
            tools=[{"type": "code_interpreter", "container": container.id}],
        )
    with pytest.raises(openai.NotFoundError):
        other.containers.delete(container.id)
    assert client.containers.retrieve(container.id).status == "running"
    assert client.containers.files.content.retrieve(secret.id, container_id=container.id).read() == b"tenant a only"
