"""file_search: a vector store from uploaded files, searched directly and by an assistant whose
answer cites them (file_citation annotations), with the search results read back from the run
step (include[]).

    ASSISTD_MODEL=openai/gpt-4o-mini python examples/openai/file_search.py ["your question"]
"""

import os
import sys

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("ASSISTD_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("ASSISTD_API_KEY", "anything-in-dev-mode"),
)
question = sys.argv[1] if len(sys.argv) > 1 else "Which planet has the most moons?"

DOCUMENTS = {
    "saturn.md": b"# Saturn\nSaturn has 274 confirmed moons, more than any other planet. Titan is the largest.\n",
    "mars.md": b"# Mars\nMars has two small moons, Phobos and Deimos.\n",
}

vector_store = client.vector_stores.create(name="Planets")
batch = client.vector_stores.file_batches.upload_and_poll(
    vector_store_id=vector_store.id, files=list(DOCUMENTS.items())
)
print(f"[{batch.file_counts.completed} of {batch.file_counts.total} files ingested]")

for hit in client.vector_stores.search(
    vector_store_id=vector_store.id, query="moons of Saturn", max_num_results=1
).data:
    print(f"[search: {hit.filename} scores {hit.score:.2f}]")

assistant = client.beta.assistants.create(
    name="Astronomy helper",
    instructions="Answer from the files, and cite them.",
    model=os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini"),
    tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
    tool_resources={"file_search": {"vector_store_ids": [vector_store.id]}},
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])
run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)

answer = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0].content[0].text
files = {f.id: f.filename for f in client.files.list(purpose="assistants")}
print(answer.value)
for annotation in answer.annotations:
    print(f"[{annotation.text} cites {files[annotation.file_citation.file_id]}]")
steps = client.beta.threads.runs.steps.list(
    thread_id=thread.id, run_id=run.id, include=["step_details.tool_calls[*].file_search.results[*].content"]
)
for step in steps.data:
    if step.step_details.type == "tool_calls":
        for call in step.step_details.tool_calls:
            for result in call.file_search.results:
                print(f"[result {result.file_name}: {result.content[0].text.splitlines()[0]}]")
print(f"[run {run.status}]")
