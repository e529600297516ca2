"""code_interpreter: the assistant analyses an uploaded CSV with Python that assistd runs in a
sandbox. The event handler prints the code as the model writes it and what the code printed, and
the chart the code drew is downloaded to chart.png.

    ASSISTD_MODEL=openai/gpt-4o-mini python examples/openai/code_interpreter.py ["your question"]
"""

import os
import sys

from openai import AssistantEventHandler, OpenAI
from typing_extensions import override

client = OpenAI(
    base_url=os.environ.get("ASSISTD_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("ASSISTD_API_KEY", "anything-in-dev-mode"),
)
question = sys.argv[1] if len(sys.argv) > 1 else "What were the total sales per region? Draw a bar chart."

SALES = b"""region,month,amount
north,jan,120
south,jan,80
north,feb,95
south,feb,130
"""


class EventHandler(AssistantEventHandler):
    @override
    def on_text_created(self, text) -> None:
        print("\nassistant > ", end="", flush=True)

    @override
    def on_text_delta(self, delta, snapshot):
        print(delta.value or "", end="", flush=True)

    @override
    def on_tool_call_created(self, tool_call):
        print(f"\nassistant > {tool_call.type}\n", flush=True)

    @override
    def on_tool_call_delta(self, delta, snapshot):
        if delta.type == "code_interpreter" and delta.code_interpreter:
            if delta.code_interpreter.input:
                print(delta.code_interpreter.input, end="", flush=True)
            for output in delta.code_interpreter.outputs or []:
                if output.type == "logs":
                    print(f"\n\noutput >\n{output.logs}", flush=True)
                else:
                    print(f"\n\nimage > {output.image.file_id}", flush=True)


sales = client.files.create(file=("sales.csv", SALES), purpose="assistants")
assistant = client.beta.assistants.create(
    name="Data analyst",
    instructions="You analyse data with Python. The user's files are in /mnt/data.",
    model=os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini"),
    tools=[{"type": "code_interpreter"}],
    tool_resources={"code_interpreter": {"file_ids": [sales.id]}},
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])

with client.beta.threads.runs.stream(
    thread_id=thread.id, assistant_id=assistant.id, event_handler=EventHandler()
) as stream:
    stream.until_done()
print(f"\n[run {stream.get_final_run().status}]")

for message in stream.get_final_messages():
    for part in message.content:
        if part.type == "image_file":
            with open("chart.png", "wb") as chart:
                chart.write(client.files.content(part.image_file.file_id).read())
            print(f"[chart {part.image_file.file_id} saved to chart.png]")
