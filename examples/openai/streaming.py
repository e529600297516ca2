"""Stream a run with `create_and_stream` and `text_deltas`: the first program of OpenAI's
Assistants streaming announcement, unchanged but for `base_url`.

    ASSISTD_MODEL=openai/gpt-4o-mini python examples/openai/streaming.py ["your question"]
"""

import os
import sys

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("ASSISTD_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("ASSISTD_API_KEY", "anything-in-dev-mode"),
)
question = sys.argv[1] if len(sys.argv) > 1 else "I need to solve the equation `3x + 11 = 14`. Can you help me?"

assistant = client.beta.assistants.create(
    name="Math Tutor",
    instructions="You are a personal math tutor. Answer math questions step by step.",
    model=os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini"),
)
thread = client.beta.threads.create()
client.beta.threads.messages.create(thread_id=thread.id, role="user", content=question)

with client.beta.threads.runs.create_and_stream(
    thread_id=thread.id,
    assistant_id=assistant.id,
    instructions="Please address the user as Jane Doe. The user has a premium account.",
) as stream:
    for text in stream.text_deltas:
        print(text, end="", flush=True)
    print()
    run = stream.get_final_run()
print(f"[run {run.status}, {run.usage.total_tokens} tokens]")
