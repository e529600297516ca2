"""assistd over gRPC from Python with the generated stubs (`make gen` writes them to gen/): a
function-call round trip, then a stream dropped mid-run and resumed with WatchRun.

    ASSISTD_GRPC_TARGET=127.0.0.1:50051 ASSISTD_MODEL=openai/gpt-4o-mini python examples/grpc/python/round_trip.py

The prompts carry the directives of the scripted model tests/e2e runs this against
([call:NAME:ARGS] makes it call a function, [chunks:N] answer with N words). The last line
printed is a JSON report.
"""

import json
import os

import grpc
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)

E = run_pb2
channel = grpc.insecure_channel(os.environ.get("ASSISTD_GRPC_TARGET", "127.0.0.1:50051"))
metadata = [("authorization", f"Bearer {os.environ.get('ASSISTD_API_KEY', 'dev')}")]
assistants = assistant_pb2_grpc.AssistantServiceStub(channel)
threads = thread_pb2_grpc.ThreadServiceStub(channel)
runs = run_service_pb2_grpc.RunServiceStub(channel)


def new_thread(text: str) -> str:
    message = message_pb2.NewMessage(role=message_pb2.MESSAGE_ROLE_USER)
    message.content.add().text.value = text
    return threads.CreateThread(thread_pb2.CreateThreadRequest(messages=[message]), metadata=metadata).thread.id


def text_of(events) -> str:
    return "".join(
        part.text.value
        for e in events
        if e.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
        for part in e.message_delta.delta.content
    )


# 1. A function call: the run stops in requires_action; our output resumes it.
tool = assistant_pb2.Tool()
tool.function.name = "get_weather"
tool.function.parameters.update({"type": "object", "properties": {"city": {"type": "string"}}})
model = os.environ.get("ASSISTD_MODEL", "openai/gpt-4o-mini")
assistant = assistants.CreateAssistant(
    assistant_pb2.CreateAssistantRequest(model=model, tools=[tool]), metadata=metadata
).assistant
thread_id = new_thread(os.environ.get("ASSISTD_PROMPT", '[call:get_weather:{"city": "Oslo"}]'))
request = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id)
first = list(runs.CreateRunStream(request, metadata=metadata))  # one segment: up to its `done`
waiting = next(e.run for e in reversed(first) if e.WhichOneof("data") == "run")
(call,) = waiting.required_action.submit_tool_outputs.tool_calls
submit = run_service_pb2.SubmitToolOutputsRequest(
    thread_id=thread_id, run_id=waiting.id, tool_outputs=[run_pb2.ToolOutput(tool_call_id=call.id, output="4C")]
)
second = list(runs.SubmitToolOutputsStream(submit, metadata=metadata))

# 2. Resume: hang up after 8 events, then WatchRun from the last one seen to the run's end.
stream = runs.CreateRunStream(
    run_service_pb2.CreateRunRequest(thread_id=new_thread("[chunks:30][slow:0.02]"), assistant_id=assistant.id),
    metadata=metadata,
)
seen = [next(stream) for _ in range(8)]
stream.cancel()  # the run goes on in the service
last = seen[-1].sequence_number
rest = list(
    runs.WatchRun(run_service_pb2.WatchRunRequest(run_id=seen[0].run.id, after_sequence=last), metadata=metadata)
)
everything = seen + rest

print(
    json.dumps(
        {
            "requiredCall": {"name": call.function.name, "arguments": call.function.arguments},
            "answer": text_of(second),
            "finalStatus": E.RunStatus.Name(second[-2].run.status),
            "resumedFrom": last,
            "sequence": [e.sequence_number for e in everything],
            "watchedText": text_of(everything),
            "watchEnd": [E.RunStatus.Name(everything[-2].run.status), E.RunEventType.Name(everything[-1].event)],
        }
    )
)
