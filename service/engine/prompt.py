"""What the model is sent for a run: instructions, the thread, this run's tool calls, and options."""

import json
from collections.abc import Callable
from typing import Any

from assistd.v1 import assistant_pb2, message_pb2, run_pb2

from service.engine.tool_prompt import CallParser, adapt_request
from service.llm import ChatRequest
from service.protojson import enum_name, struct_to_python
from service.retrieval import citations
from service.sandbox import tool as code_tool

_ROLES = {message_pb2.MESSAGE_ROLE_USER: "user", message_pb2.MESSAGE_ROLE_ASSISTANT: "assistant"}


def _time_key(object_id: str) -> str:
    """The time-ordered part of an id (after its prefix), comparable across kinds."""
    return object_id.split("_", 1)[-1] if "_" in object_id else object_id


def message_content(message: message_pb2.Message) -> str | list[dict[str, Any]]:
    """A thread message as chat content: a string when it is all text, else parts."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.WhichOneof("kind")
        if kind == "text":
            parts.append({"type": "text", "text": part.text.value})
        elif kind == "image_url":
            parts.append({"type": "image_url", "image_url": {"url": part.image_url.url}})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.refusal})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_turn(step: run_pb2.RunStep, first_source: int) -> list[dict[str, Any]]:
    """A finished tool_calls step as the assistant's calls followed by one tool message per result.
    file_search calls come back as calls of the search function, their results numbered as sources
    from first_source on; code_interpreter calls as calls of the python function."""
    calls, outputs = [], []
    for call in step.step_details.tool_calls.items:
        kind = call.WhichOneof("kind")
        if kind == "function" and call.function.HasField("output"):
            calls.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            )
            outputs.append(call.function.output)
        elif kind == "file_search":
            calls.append(
                {"id": call.id, "type": "function", "function": {"name": citations.FUNCTION_NAME, "arguments": "{}"}}
            )
            outputs.append(citations.format_results(call.file_search.results, first_source))
            first_source += len(call.file_search.results)
        elif kind == "code_interpreter":
            arguments = json.dumps({"code": call.code_interpreter.input})
            calls.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": code_tool.FUNCTION_NAME, "arguments": arguments},
                }
            )
            outputs.append(code_output(call.code_interpreter))
    if not calls:
        return []
    turn: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    turn.extend(
        {"role": "tool", "tool_call_id": c["id"], "content": output} for c, output in zip(calls, outputs, strict=True)
    )
    return turn


def code_output(call: run_pb2.CodeInterpreterCall) -> str:
    """What the model reads back from running its code."""
    parts = []
    for output in call.outputs:
        if output.WhichOneof("kind") == "logs":
            parts.append(output.logs)
        else:
            parts.append(f"[image {output.image.file_id}: shown to the user]")
    return "\n".join(parts) or "(the code ran and printed nothing)"


Entry = tuple[str, list[dict[str, Any]]]  # (time key, the chat messages it stands for)


def message_entry(message: message_pb2.Message) -> Entry | None:
    """A thread message as a prompt entry; None for one the model is not sent (no content)."""
    if message.role not in _ROLES or not message.content:
        return None
    return _time_key(message.id), [{"role": _ROLES[message.role], "content": message_content(message)}]


def build_messages(
    run: run_pb2.Run,
    thread_messages: list[message_pb2.Message],
    steps: list[run_pb2.RunStep],
    entry_of: Callable[[message_pb2.Message], Entry | None] = message_entry,
) -> list[dict[str, Any]]:
    """System instructions, then the thread and this run's finished tool calls in the order they
    happened, truncated as the run asks. entry_of may answer from a memo (service/engine/history.py);
    the chat messages it gives are never changed here."""
    entries: list[Entry] = [entry for m in thread_messages if (entry := entry_of(m)) is not None]
    first_source = 0
    for step in steps:
        if step.type == run_pb2.RUN_STEP_TYPE_TOOL_CALLS and step.status == run_pb2.RUN_STEP_STATUS_COMPLETED:
            if turn := _tool_turn(step, first_source):
                entries.append((_time_key(step.id), turn))
            first_source += len(citations.sources([step]))
    entries.sort(key=lambda entry: entry[0])
    strategy = run.truncation_strategy
    if strategy.type == run_pb2.TRUNCATION_STRATEGY_TYPE_LAST_MESSAGES and strategy.HasField("last_messages"):
        entries = _last_messages(entries, strategy.last_messages)
    chat: list[dict[str, Any]] = []
    if run.instructions:
        chat.append({"role": "system", "content": run.instructions})
    for _, messages in entries:
        for message in messages:
            previous = chat[-1] if chat else {}
            if message.get("tool_calls") and previous.get("role") == "assistant" and "tool_calls" not in previous:
                # text the model wrote before calling tools belongs to the same assistant turn
                message = {**message, "content": chat.pop()["content"]}
            chat.append(dict(message))  # a copy: a provider may change what it is given
    return chat


def _last_messages(entries, n: int):
    """From the n-th last thread message on; the run's tool turns after it are kept whole."""
    positions = [i for i, (_, messages) in enumerate(entries) if "tool_calls" not in messages[0]]
    if len(positions) <= n:
        return entries
    return entries[positions[-n] :]


def tools_for_model(run: run_pb2.Run) -> list[dict[str, Any]]:
    """The run's function tools in the chat-completions `tools` shape."""
    tools = []
    for tool in run.tools:
        if tool.WhichOneof("kind") != "function":
            continue
        function: dict[str, Any] = {"name": tool.function.name}
        if tool.function.HasField("description"):
            function["description"] = tool.function.description
        function["parameters"] = (
            struct_to_python(tool.function.parameters)
            if tool.function.HasField("parameters")
            else {"type": "object", "properties": {}}
        )
        if tool.function.HasField("strict"):
            function["strict"] = tool.function.strict
        tools.append({"type": "function", "function": function})
    return tools


def tool_choice_for_model(run: run_pb2.Run) -> Any:
    choice = run.tool_choice
    kind = choice.WhichOneof("kind")
    if kind == "function":
        return {"type": "function", "function": {"name": choice.function.name}}
    if kind == "file_search":
        return {"type": "function", "function": {"name": citations.FUNCTION_NAME}}
    if kind == "code_interpreter":
        return {"type": "function", "function": {"name": code_tool.FUNCTION_NAME}}
    return kind or "auto"


def _offered_choice(run: run_pb2.Run, tools: list[dict[str, Any]]) -> Any:
    """The run's tool choice, or "auto" when it names a tool not offered this turn (a built-in
    tool once max_tool_calls is spent)."""
    choice = tool_choice_for_model(run)
    if isinstance(choice, dict) and choice["function"]["name"] not in {t["function"]["name"] for t in tools}:
        return "auto"
    return choice


def response_format_for_model(run: run_pb2.Run) -> dict[str, Any] | None:
    fmt = run.response_format
    kind = fmt.WhichOneof("kind")
    if kind in (None, "auto"):
        return None
    if kind != "json_schema":
        return {"type": kind}
    schema: dict[str, Any] = {"name": fmt.json_schema.name}
    if fmt.json_schema.HasField("description"):
        schema["description"] = fmt.json_schema.description
    if fmt.json_schema.HasField("schema"):
        schema["schema"] = struct_to_python(fmt.json_schema.schema)
    if fmt.json_schema.HasField("strict"):
        schema["strict"] = fmt.json_schema.strict
    return {"type": "json_schema", "json_schema": schema}


def chat_request(
    run: run_pb2.Run,
    chat: list[dict[str, Any]],
    searching: bool,
    tool_prompt_models: frozenset[str],
    coding: bool = False,
) -> tuple[ChatRequest, CallParser | None]:
    """The provider request for the next turn of a run, and for a model that takes its tools in
    the prompt (tool_prompt_models) the parser that finds its calls in the answer."""
    tools = tools_for_model(run)
    if searching:
        tools.append(citations.FUNCTION)
    if coding:
        tools.append(code_tool.FUNCTION)
    used = run.usage.completion_tokens
    request = ChatRequest(
        model=run.model,
        messages=chat,
        temperature=run.temperature if run.HasField("temperature") else None,
        top_p=run.top_p if run.HasField("top_p") else None,
        max_tokens=run.max_completion_tokens - used if run.HasField("max_completion_tokens") else None,
        tools=tools,
        tool_choice=_offered_choice(run, tools) if tools else None,
        parallel_tool_calls=run.parallel_tool_calls if tools else None,
        response_format=response_format_for_model(run),
        reasoning_effort=enum_name(assistant_pb2.ReasoningEffort.DESCRIPTOR, run.reasoning_effort)
        if run.HasField("reasoning_effort")
        else None,
    )
    if tools and run.model in tool_prompt_models:
        return adapt_request(request), CallParser({tool["function"]["name"] for tool in tools})
    return request, None
