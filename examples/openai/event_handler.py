"""An `AssistantEventHandler` subclass: text as it is written, and the tool calls the assistant
makes (here the built-in file_search, which assistd runs itself), as OpenAI's Assistants
streaming announcement shows it.

    ASSISTD_MODEL=openai/gpt-4o-mini python examples/openai/event_handler.py ["your question"]
"""

import os
import sys

from openai import AssistantEventHandler, OpenAI
from typing_extensions import override

client = OpenAI(
    base_url=os.environ.get("ASSISTD_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("ASSISTD_API_KEY", "anything-in-dev-mode"),
)
question = sys.argv[1] if len(sys.argv) > 1 else "How many days of leave do new employees get?"

HANDBOOK = b"""# Employee handbook
New employees get 25 days of paid leave a year, and 5 more after five years.
Remote work is possible two days a week.
"""


class EventHandler(AssistantEventHandler):
    @override
    def on_text_created(self, text) -> None:
        print("\nassistant > ", end="", flush=True)

    @override
    def on_text_delta(self, delta, snapshot):
        print(delta.value, end="", flush=True)

    @override
    def on_tool_call_created(self, tool_call):
        print(f"\nassistant > {tool_call.type}\n", flush=True)

    @override
    def on_tool_call_delta(self, delta, snapshot):
        if delta.type == "function" and delta.function.arguments:
            print(delta.function.arguments, end="", flush=True)

    @override
    def on_tool_call_done(self, tool_call):
        print(f"[{tool_call.type} call {tool_call.id} done]", flush=True)

    @override
    def on_message_done(self, message) -> None:
        cited = {a.file_citation.file_id for a in message.content[0].text.annotations if a.type == "file_citation"}
        print(f"\n[cites {len(cited)} file(s)]", flush=True)


handbook = client.files.create(file=("handbook.md", HANDBOOK), purpose="assistants")
assistant = client.beta.assistants.create(
    name="Handbook helper",
    instructions="Answer from the employee handbook, and cite it.",
    model=os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini"),
    tools=[{"type": "file_search"}],
    tool_resources={"file_search": {"vector_stores": [{"file_ids": [handbook.id]}]}},
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])

with client.beta.threads.runs.stream(
    thread_id=thread.id,
    assistant_id=assistant.id,
    event_handler=EventHandler(),
) as stream:
    stream.until_done()
print(f"[run {stream.get_final_run().status}]")
