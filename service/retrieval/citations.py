"""file_search as the model sees it: a search function, results numbered as sources, and the
`【n†name】` markers in its answer turned into file_citation annotations."""

import re
from typing import Any

from assistd.v1 import message_pb2, run_pb2

FUNCTION_NAME = "file_search"
FUNCTION = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": (
            "Search the files the user has provided for passages relevant to the question. "
            "Cite each passage you use with its marker exactly as shown, e.g. 【0†report.pdf】."
        ),
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}, "description": "Search queries"}},
            "required": ["queries"],
        },
    },
}
_MARKER = re.compile(r"【(\d+)(?::\d+)?†[^】]*】")


def sources(steps: list[run_pb2.RunStep]) -> list[run_pb2.FileSearchResult]:
    """Every file_search result of a run, in order: source n is the n-th."""
    found: list[run_pb2.FileSearchResult] = []
    for step in steps:
        for call in step.step_details.tool_calls.items:
            if call.WhichOneof("kind") == "file_search":
                found.extend(call.file_search.results)
    return found


def format_results(results, first_number: int) -> str:
    """Search results as the tool output the model reads."""
    if not results:
        return "No results found."
    blocks = [
        f"【{first_number + i}†{r.file_name}】\n" + "\n".join(c.text for c in r.content) for i, r in enumerate(results)
    ]
    return "\n\n".join(blocks)


def annotate(text: str, known: list[run_pb2.FileSearchResult]) -> list[message_pb2.Annotation]:
    """file_citation annotations for the source markers in an answer (unknown numbers are left alone)."""
    annotations = []
    for match in _MARKER.finditer(text):
        number = int(match.group(1))
        if number < len(known):
            annotation = message_pb2.Annotation(text=match.group(0), start_index=match.start(), end_index=match.end())
            annotation.file_citation.file_id = known[number].file_id
            annotations.append(annotation)
    return annotations


def queries_of(arguments: str) -> list[str]:
    """The queries of a file_search call; a model that sends one `query` string is understood too."""
    import json

    try:
        data: Any = json.loads(arguments or "{}")
    except ValueError:
        return [arguments] if arguments.strip() else []
    if isinstance(data, dict):
        queries = data.get("queries", data.get("query")) or []
        if isinstance(queries, str):
            return [queries]
        return [q for q in queries if isinstance(q, str)] if isinstance(queries, list) else []
    return []
