"""Function calling while streaming: an event handler that answers `thread.run.requires_action`
by submitting the tool outputs with `submit_tool_outputs_stream`, as OpenAI's Assistants
streaming announcement shows it.

    ASSISTD_MODEL=openai/gpt-4o-mini python examples/openai/function_calling.py ["your question"]
"""

import os
import sys

from openai import AssistantEventHandler, OpenAI
from typing_extensions import override

client = OpenAI(
    base_url=os.environ.get("ASSISTD_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("ASSISTD_API_KEY", "anything-in-dev-mode"),
)
question = sys.argv[1] if len(sys.argv) > 1 else "What's the weather in San Francisco today and the chance of rain?"

assistant = client.beta.assistants.create(
    instructions="You are a weather bot. Use the provided functions to answer questions.",
    model=os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini"),
    tools=[
        {
            "type": "function",
            "function": {
                "name": "get_current_temperature",
                "description": "Get the current temperature for a specific location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "description": "The city and state, e.g., San Francisco, CA"},
                        "unit": {"type": "string", "enum": ["Celsius", "Fahrenheit"]},
                    },
                    "required": ["location", "unit"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_rain_probability",
                "description": "Get the probability of rain for a specific location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "The city and state"}},
                    "required": ["location"],
                },
            },
        },
    ],
)
thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])


class EventHandler(AssistantEventHandler):
    @override
    def on_event(self, event):
        # Retrieve events that are denoted with 'requires_action', since these will have our tool_calls
        if event.event == "thread.run.requires_action":
            run_id = event.data.id  # Retrieve the run ID from the event data
            self.handle_requires_action(event.data, run_id)

    def handle_requires_action(self, data, run_id):
        tool_outputs = []
        for tool in data.required_action.submit_tool_outputs.tool_calls:
            print(f"[calls {tool.function.name}({tool.function.arguments})]", flush=True)
            if tool.function.name == "get_current_temperature":
                tool_outputs.append({"tool_call_id": tool.id, "output": "57"})
            elif tool.function.name == "get_rain_probability":
                tool_outputs.append({"tool_call_id": tool.id, "output": "0.06"})
        # Submit all tool_outputs at the same time
        self.submit_tool_outputs(tool_outputs, run_id)

    def submit_tool_outputs(self, tool_outputs, run_id):
        # Use the submit_tool_outputs_stream helper
        with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=self.current_run.thread_id,
            run_id=self.current_run.id,
            tool_outputs=tool_outputs,
            event_handler=EventHandler(),
        ) as stream:
            for text in stream.text_deltas:
                print(text, end="", flush=True)
            print()


with client.beta.threads.runs.stream(
    thread_id=thread.id, assistant_id=assistant.id, event_handler=EventHandler()
) as stream:
    stream.until_done()
run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
print(f"[run {run.status}]")
