"""Turns a run and its thread into the chat messages sent to the model."""

from typing import Any

from assistd.v1 import message_pb2, run_pb2

_ROLES = {message_pb2.MESSAGE_ROLE_USER: "user", message_pb2.MESSAGE_ROLE_ASSISTANT: "assistant"}


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


def build_messages(run: run_pb2.Run, thread_messages: list[message_pb2.Message]) -> list[dict[str, Any]]:
    """System instructions, then the thread oldest first, truncated as the run asks."""
    history = [m for m in thread_messages if m.role in _ROLES]
    strategy = run.truncation_strategy
    if strategy.type == "last_messages" and strategy.HasField("last_messages"):
        history = history[-strategy.last_messages :] if strategy.last_messages > 0 else []
    chat: list[dict[str, Any]] = []
    if run.instructions:
        chat.append({"role": "system", "content": run.instructions})
    chat.extend({"role": _ROLES[m.role], "content": message_content(m)} for m in history)
    return chat
