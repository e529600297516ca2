"""code_interpreter as the model sees it: a `python` function taking the code, and the code read
back out of the arguments the model streams."""

import json
from typing import Any

FUNCTION_NAME = "python"
FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": (
            "Runs Python 3 code in a stateful sandbox: variables and imports persist between calls "
            "of this thread. Files the user gave are in /mnt/data (the working directory); files you "
            "write there persist. numpy, pandas and matplotlib are installed; matplotlib figures "
            "left open are shown to the user as images. There is no internet access. Print what "
            "you need to see: stdout, stderr and the value of a last bare expression come back."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}


def code_of(arguments: str) -> str:
    """The code of a whole call: its `code` argument, or the arguments themselves when they are
    not a JSON object (models without strict function calling sometimes send bare code)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return value["code"]
    return arguments if not isinstance(value, dict) else ""


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def partial_code(arguments: str) -> str:
    """The part of the `code` string decoded so far from arguments still being streamed, so the
    code can stream to the client as the model writes it. An escape cut in half waits for its end."""
    start = arguments.find('"code"')
    if start < 0:
        return ""
    rest = arguments[start + len('"code"') :].lstrip()
    if not rest.startswith(":"):
        return ""
    rest = rest[1:].lstrip()
    if not rest.startswith('"'):
        return ""
    out: list[str] = []
    i = 1
    while i < len(rest):
        char = rest[i]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(rest):
            break
        kind = rest[i + 1]
        if kind == "u":
            if i + 6 > len(rest):
                break
            unit = int(rest[i + 2 : i + 6], 16)
            if 0xD800 <= unit < 0xDC00:  # a surrogate pair: wait for both halves
                if i + 12 > len(rest):
                    break
                low = int(rest[i + 8 : i + 12], 16)
                out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
                i += 12
                continue
            out.append(chr(unit))
            i += 6
            continue
        out.append(_ESCAPES.get(kind, kind))
        i += 2
    return "".join(out)
