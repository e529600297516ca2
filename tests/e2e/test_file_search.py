"""The file_search tool in runs: a server-side search step, results on request, citations."""

from openai import AssistantEventHandler

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores

INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"
SEARCH = '[call:file_search:{"queries": ["zebra stripes"]}]'


def _kb(client):
    vs = client.vector_stores.create(name="animals")
    files = {}
    for name, text in [
        ("zebras.md", b"# Zebras\nZebras are known for their black and white stripes.\n"),
        ("etna.txt", b"Mount Etna is an active volcano in Sicily.\n"),
    ]:
        files[name] = client.vector_stores.files.upload_and_poll(
            vector_store_id=vs.id, file=(name, text), poll_interval_ms=50
        ).id
    return vs, files


def test_a_streamed_run_searches_and_cites_the_right_file(client):
    vs, files = _kb(client)
    assistant = client.beta.assistants.create(
        model=MODEL, tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [vs.id]}}
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"What are zebras known for? {SEARCH}"}])
    seen_calls = []

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call):
            seen_calls.append(tool_call.type)

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler(), include=[INCLUDE]
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        (answer,) = stream.get_final_messages()
    assert run.status == "completed" and seen_calls == ["file_search"]
    text = answer.content[0].text
    assert "【0†zebras.md】" in text.value
    citation = text.annotations[0]
    assert citation.type == "file_citation" and citation.file_citation.file_id == files["zebras.md"]
    assert text.value[citation.start_index : citation.end_index] == citation.text == "【0†zebras.md】"
    stored = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert stored.annotations[0].file_citation.file_id == files["zebras.md"]

    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.step_details.type for s in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search" and call.file_search.results[0].file_id == files["zebras.md"]
    assert not call.file_search.results[0].content  # contents only when asked for
    detailed = client.beta.threads.runs.steps.retrieve(
        step_id=steps[0].id, thread_id=thread.id, run_id=run.id, include=[INCLUDE]
    )
    result = detailed.step_details.tool_calls[0].file_search.results[0]
    assert result.file_name == "zebras.md" and "black and white stripes" in result.content[0].text
    assert 0 < result.score <= 1


def test_a_message_attachment_creates_a_searchable_thread_vector_store(client):
    doc = client.files.create(file=("volcano.txt", b"Mount Etna is an active volcano on Sicily."), purpose="assistants")
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": '[call:file_search:{"queries": ["volcano Sicily"]}] Where is Etna?',
                "attachments": [{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    (vs_id,) = thread.tool_resources.file_search.vector_store_ids
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert answer.annotations and answer.annotations[0].file_citation.file_id == doc.id
    assert client.vector_stores.retrieve(vs_id).file_counts.completed == 1
