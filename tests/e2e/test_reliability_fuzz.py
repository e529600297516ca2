"""A bounded, seeded mutation fuzz of the JSON routes: valid bodies with one value replaced by a
hostile one (non-finite numbers, lone surrogates, huge strings, deep nesting, wrong types), an
odd key added, or a byte broken. No answer is a 5xx, every refusal is OpenAI's envelope, a refused
assistant is not stored, and the tenant's lists answer 200 throughout."""

import json
import random

import httpx
import pytest

from tests.conftest import MODEL

CASES = 1000
SEED = 20261127
HOSTILE = [
    "Infinity",
    "-Infinity",
    "NaN",
    "1e999",
    '"\\ud800"',
    '"x\\udfff"',
    '"' + "x" * 300_000 + '"',
    "[" * 60 + "]" * 60,
    '{"a":' * 40 + "1" + "}" * 40,
    "99999999999999999999999",
    "-1",
    "null",
    "true",
    "{}",
    "[]",
    "1.5",
    '{"type":"nope"}',
    '"\\u0000"',
    '"' + "\u00e9" * 1000 + '"',
]
BROKEN_BYTES = [b"\xff", b"\xed\xa0\x80", b"\x00", b""]


def _bodies(client, assistant_id: str) -> list[tuple[str, dict]]:
    thread = client.beta.threads.create()
    store = client.vector_stores.create(name="fuzz")
    function = {
        "name": "f",
        "description": "x",
        "parameters": {"type": "object", "properties": {"a": {"type": "number", "maximum": 3}}},
    }
    return [
        (
            "/assistants",
            {
                "model": MODEL,
                "name": "n",
                "instructions": "i",
                "temperature": 1,
                "top_p": 1,
                "metadata": {"k": "v"},
                "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
                "tools": [{"type": "function", "function": function}, {"type": "file_search"}],
            },
        ),
        (f"/assistants/{assistant_id}", {"name": "n2", "metadata": {"a": "b"}, "temperature": 0.5}),
        ("/threads", {"messages": [{"role": "user", "content": "hi", "metadata": {"k": "v"}}], "metadata": {"x": "y"}}),
        (f"/threads/{thread.id}", {"metadata": {"x": "z"}}),
        (f"/threads/{thread.id}/messages", {"role": "user", "content": [{"type": "text", "text": "hello"}]}),
        (
            "/vector_stores",
            {
                "name": "v",
                "expires_after": {"anchor": "last_active_at", "days": 3},
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 100},
                },
            },
        ),
        (
            f"/vector_stores/{store.id}/search",
            {"query": "hello", "max_num_results": 3, "filters": {"type": "eq", "key": "a", "value": 1}},
        ),
        (
            f"/threads/{thread.id}/runs",
            {
                "assistant_id": "asst_none",
                "additional_messages": [{"role": "user", "content": "x"}],
                "truncation_strategy": {"type": "last_messages", "last_messages": 2},
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
        ),
    ]


def _paths(value, path=()):
    """Every position in a JSON value, as a key/index path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))
    if path:
        yield path


def _with(value, path, raw: str) -> str:
    """value as JSON text, with the item at path replaced by raw text."""
    if not path:
        return raw
    if isinstance(value, dict):
        items = (
            json.dumps(k) + ":" + (_with(v, path[1:], raw) if k == path[0] else json.dumps(v)) for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    return "[" + ",".join(_with(v, path[1:], raw) if i == path[0] else json.dumps(v) for i, v in enumerate(value)) + "]"


def _mutant(rng: random.Random, body: dict) -> bytes:
    roll = rng.random()
    if roll < 0.8:
        return _with(body, rng.choice(list(_paths(body))), rng.choice(HOSTILE)).encode()
    if roll < 0.9:
        return json.dumps({**body, rng.choice(["x" * 100_000, "\u00e9", "type", "stream"]): 1}).encode()
    raw = json.dumps(body).encode()
    cut = rng.randrange(len(raw))
    return raw[:cut] + rng.choice(BROKEN_BYTES) + raw[cut + 1 :]


@pytest.mark.timeout(600)
def test_a_thousand_hostile_bodies_give_no_5xx_and_leave_the_tenant_usable(server, client, assistant):
    rng = random.Random(SEED)
    routes = _bodies(client, assistant.id)
    statuses: dict[int, int] = {}
    headers = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        for i in range(CASES):
            path, body = rng.choice(routes)
            newest = http.get("/assistants?limit=1").json()["data"] if path == "/assistants" else None
            response = http.post(path, content=_mutant(rng, body))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (path, response.text[:300])
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}
                if newest is not None:  # a refused assistant is not stored
                    assert http.get("/assistants?limit=1").json()["data"] == newest
            if i % 100 == 0:
                for listing in ("/assistants?limit=100", "/vector_stores?limit=100", "/files"):
                    assert http.get(listing).status_code == 200
    assert sum(statuses.values()) == CASES and statuses.get(400, 0) > CASES // 2
