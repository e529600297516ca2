"""Function calling for models without native tool calls: the functions go into the prompt, and
an answer that is a `{"tool_calls": [...]}` JSON object becomes real tool calls.

Used for the models named in ASSISTD_TOOL_PROMPT_MODELS. Text that cannot be a call streams as
usual; an answer that starts like JSON is held back until it is known to be a call or not.
"""

import json
import re
from dataclasses import replace
from typing import Any

from service.llm import ChatRequest, ToolCallFragment

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _protocol(tools: list[dict[str, Any]], tool_choice: Any) -> str:
    functions = json.dumps([tool["function"] for tool in tools], indent=1)
    if tool_choice == "required":
        rule = "You must call at least one function now."
    elif isinstance(tool_choice, dict):
        rule = f"You must call the function {tool_choice['function']['name']} now."
    else:
        rule = "Call functions only when they help; otherwise answer normally."
    return (
        f"You can call these functions:\n{functions}\n"
        "To call functions, reply with only this JSON object and nothing else: "
        '{"tool_calls": [{"name": "<function name>", "arguments": {<arguments object>}}]}\n'
        f"{rule}"
    )


def _plain_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier calls and results written as text, since the model has no tool roles."""
    names: dict[str, str] = {}
    plain = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                names[call["id"]] = call["function"]["name"]
                try:
                    arguments = json.loads(call["function"]["arguments"] or "{}")
                except ValueError:
                    arguments = call["function"]["arguments"]
                calls.append({"name": call["function"]["name"], "arguments": arguments})
            plain.append({"role": "assistant", "content": json.dumps({"tool_calls": calls})})
        elif message.get("role") == "tool":
            name = names.get(message["tool_call_id"], "function")
            plain.append({"role": "user", "content": f"Result of {name}: {message['content']}"})
        else:
            plain.append(message)
    return plain


def adapt_request(request: ChatRequest) -> ChatRequest:
    """The request without native tools: protocol in the system prompt, history as text."""
    messages = _plain_history(request.messages)
    if request.tools and request.tool_choice != "none":
        protocol = _protocol(request.tools, request.tool_choice)
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{protocol}"}
        else:
            messages.insert(0, {"role": "system", "content": protocol})
    return replace(request, messages=messages, tools=None, tool_choice=None, parallel_tool_calls=None)


class CallParser:
    """Splits a streamed answer into text to show now and, at the end, tool calls."""

    def __init__(self, function_names: set[str]):
        self._names = function_names
        self._held = ""
        self._streaming = False  # decided: plain text, pass it through

    def feed(self, text: str) -> str:
        """Text that can be shown now ("" while a possible call is held back)."""
        if self._streaming:
            return text
        self._held += text
        start = self._held.lstrip()
        if not start or start[0] in "{`":
            return ""  # might be a call: hold it until the end
        self._streaming = True
        held, self._held = self._held, ""
        return held

    def finish(self) -> tuple[str, list[ToolCallFragment]]:
        """(text still to show, tool calls) once the answer is complete."""
        held, self._held = self._held, ""
        calls = self._calls(held.strip())
        if calls is None:
            return held, []
        return "", [
            ToolCallFragment(index=i, name=name, arguments=json.dumps(arguments))
            for i, (name, arguments) in enumerate(calls)
        ]

    def _calls(self, text: str) -> list[tuple[str, Any]] | None:
        fenced = _FENCE.match(text)
        try:
            data = json.loads(fenced.group(1) if fenced else text)
        except ValueError:
            return None
        raw = data.get("tool_calls") if isinstance(data, dict) else None
        if not isinstance(raw, list) or not raw:
            return None
        calls = []
        for item in raw:
            if not isinstance(item, dict) or item.get("name") not in self._names:
                return None
            arguments = item.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments or "{}")
                except ValueError:
                    return None
            calls.append((item["name"], arguments))
        return calls
