"""store=False responses leave nothing behind: the thread each ran on is deleted once it ends,
also when it ended with function calls no one can answer, or its client went away. Read from the
SQLite file, the one store a test can list every thread of."""

import sqlite3

from service import ids
from tests.conftest import MODEL, wait_for

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def _threads_since(server, first_id: str) -> list[str]:
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id FROM objects WHERE kind='thread' AND id >= ?", (first_id,)).fetchall()
    return [row[0] for row in rows]


def test_store_false_responses_delete_their_threads(server):
    client = server.client()
    since = ids.new_id("thread_")
    plain = client.responses.create(model=MODEL, input="[reply:gone]", store=False)
    assert plain.output_text == "gone"
    called = client.responses.create(model=MODEL, input="[call:get_weather:{}]", tools=[WEATHER], store=False)
    assert called.output[0].type == "function_call"
    stream = client.responses.create(model=MODEL, input="[chunks:50][slow:0.02]", store=False, stream=True)
    next(iter(stream))
    stream.close()  # the client goes away at the first event
    kept = client.responses.create(model=MODEL, input="[reply:kept]")
    assert wait_for(lambda: len(_threads_since(server, since)) == 1)
    assert client.responses.retrieve(kept.id).output_text == "kept"
