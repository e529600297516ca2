"""Vector stores, ingestion and search through the openai SDK's helpers."""

import openai
import pytest

from tests import documents
from tests.conftest import Server

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


@pytest.fixture
def corpus():
    return {
        "zebras.md": b"# Zebras\nZebras are African equines with distinctive black and white stripes.\n",
        "volcano.txt": b"Mount Etna is an active stratovolcano on the east coast of Sicily.\n",
        "rockets.pdf": documents.pdf("The Saturn V rocket carried astronauts to the Moon in 1969."),
        "coffee.docx": documents.docx("Espresso is brewed by forcing hot water through finely ground coffee."),
    }


def test_upload_and_poll_a_batch_with_exact_counts_and_a_failure(client, corpus):
    vs = client.vector_stores.create(name="mixed", metadata={"team": "kb"})
    files = [(name, data) for name, data in corpus.items()] + [("broken.pdf", b"%PDF-1.4 this is not a pdf")]
    batch = client.vector_stores.file_batches.upload_and_poll(vector_store_id=vs.id, files=files, poll_interval_ms=50)
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.cancelled, counts.total) == (4, 1, 0, 0, 5)
    listed = client.vector_stores.files.list(vector_store_id=vs.id, filter="failed").data
    assert len(listed) == 1 and listed[0].last_error.code == "invalid_file"
    store = client.vector_stores.retrieve(vs.id)
    assert store.status == "completed" and store.file_counts.completed == 4 and store.usage_bytes > 0
    assert store.name == "mixed" and store.metadata == {"team": "kb"}
    batch_files = client.vector_stores.file_batches.list_files(batch_id=batch.id, vector_store_id=vs.id)
    assert len(batch_files.data) == 5


def test_search_ranks_the_document_with_the_answer_first(client, corpus):
    vs = client.vector_stores.create(name="kb")
    ids = {}
    for name, data in corpus.items():
        ids[name] = client.vector_stores.files.upload_and_poll(
            vector_store_id=vs.id, file=(name, data), poll_interval_ms=50
        ).id
    for query, expected in [
        ("Which rocket went to the Moon?", "rockets.pdf"),
        ("how is espresso brewed", "coffee.docx"),
        ("stripes of zebras", "zebras.md"),
        ("volcano in Sicily", "volcano.txt"),
    ]:
        results = client.vector_stores.search(vector_store_id=vs.id, query=query).data
        assert results[0].file_id == ids[expected] and results[0].filename == expected, query
        assert 0 <= results[-1].score <= results[0].score <= 1
        assert results[0].content[0].type == "text" and results[0].content[0].text
    client.files.delete(ids["rockets.pdf"])
    after = client.vector_stores.search(vector_store_id=vs.id, query="Which rocket went to the Moon?").data
    assert ids["rockets.pdf"] not in [r.file_id for r in after]
    assert client.vector_stores.retrieve(vs.id).file_counts.total == 3


def test_attribute_filters_and_max_num_results(client):
    vs = client.vector_stores.create(name="filtered")
    for year in (2021, 2022, 2023):
        file = client.files.create(
            file=(f"report-{year}.txt", f"Annual revenue report for {year}.".encode()), purpose="assistants"
        )
        client.vector_stores.files.create_and_poll(
            vector_store_id=vs.id, file_id=file.id, attributes={"year": year, "kind": "report"}, poll_interval_ms=50
        )
    recent = client.vector_stores.search(
        vector_store_id=vs.id, query="revenue report", filters={"type": "gte", "key": "year", "value": 2022}
    ).data
    assert sorted(r.attributes["year"] for r in recent) == [2022, 2023]
    both = {
        "type": "and",
        "filters": [{"type": "eq", "key": "kind", "value": "report"}, {"type": "lt", "key": "year", "value": 2022}],
    }
    assert [
        r.filename for r in client.vector_stores.search(vector_store_id=vs.id, query="revenue", filters=both).data
    ] == ["report-2021.txt"]
    assert len(client.vector_stores.search(vector_store_id=vs.id, query="revenue", max_num_results=1).data) == 1


def test_chunking_strategy_is_honoured_and_validated(client):
    text = " ".join(f"word{i}" for i in range(3000)).encode()
    file = client.files.create(file=("long.txt", text), purpose="assistants")
    vs = client.vector_stores.create(name="chunks")
    vs_file = client.vector_stores.files.create_and_poll(
        vector_store_id=vs.id,
        file_id=file.id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}},
        poll_interval_ms=50,
    )
    assert vs_file.status == "completed"
    assert vs_file.chunking_strategy.static.max_chunk_size_tokens == 200
    bad = [
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}},
            "max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 5000, "chunk_overlap_tokens": 0}},
            "max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 201}},
            "chunk_overlap_tokens",
        ),
    ]
    other = client.vector_stores.create(name="untouched")
    for strategy, field in bad:
        with pytest.raises(openai.BadRequestError) as info:
            client.vector_stores.files.create(vector_store_id=other.id, file_id=file.id, chunking_strategy=strategy)
        assert info.value.param == f"chunking_strategy.static.{field}"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=other.id, file_id="file-nope")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(name="x", file_ids=[file.id, "file-nope"])
    assert client.vector_stores.files.list(vector_store_id=other.id).data == []
    auto = client.vector_stores.files.create_and_poll(vector_store_id=other.id, file_id=file.id, poll_interval_ms=50)
    assert (
        auto.chunking_strategy.static.max_chunk_size_tokens == 800
        and auto.chunking_strategy.static.chunk_overlap_tokens == 400
    )
    # the chunks really are cut to size: 200-token windows hold about a quarter of the words of 800-token ones
    small = client.vector_stores.search(vector_store_id=vs.id, query="word1500").data[0].content[0].text
    large = client.vector_stores.search(vector_store_id=other.id, query="word1500").data[0].content[0].text
    assert "word1500" in small and "word1500" in large
    assert 3 * len(small.split()) < len(large.split())


def test_vector_store_crud_and_file_removal(client, corpus):
    vs = client.vector_stores.create(name="crud", expires_after={"anchor": "last_active_at", "days": 7})
    assert vs.expires_after.days == 7 and vs.expires_at is not None
    assert client.vector_stores.update(vs.id, name="renamed").name == "renamed"
    assert vs.id in [v.id for v in client.vector_stores.list()]
    vs_file = client.vector_stores.files.upload_and_poll(
        vector_store_id=vs.id, file=("zebras.md", corpus["zebras.md"]), poll_interval_ms=50
    )
    assert client.vector_stores.files.delete(file_id=vs_file.id, vector_store_id=vs.id).deleted
    assert client.vector_stores.search(vector_store_id=vs.id, query="zebras").data == []
    assert client.files.retrieve(vs_file.id).id == vs_file.id  # the file itself stays
    assert client.vector_stores.delete(vs.id).object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(vs.id)


def test_hybrid_search_finds_what_keywords_miss(provider, tmp_path, client, store_env):
    docs = [
        ("cars.txt", b"My car is a red convertible with leather seats."),
        ("bread.txt", b"Sourdough bread needs a starter."),
    ]
    keyword_only = client.vector_stores.create(name="keywords")
    for name, data in docs:
        client.vector_stores.files.upload_and_poll(
            vector_store_id=keyword_only.id, file=(name, data), poll_interval_ms=50
        )
    assert client.vector_stores.search(vector_store_id=keyword_only.id, query="automobile").data == []

    requests_before = len(provider.requests)
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_EMBEDDING_MODEL": "openai/scripted-embed"}).start()
    try:
        hybrid = server.client()
        vs = hybrid.vector_stores.create(name="hybrid")
        for name, data in docs:
            hybrid.vector_stores.files.upload_and_poll(vector_store_id=vs.id, file=(name, data), poll_interval_ms=50)
        results = hybrid.vector_stores.search(vector_store_id=vs.id, query="automobile").data
        assert results[0].filename == "cars.txt" and results[0].score == 1.0
        assert (
            hybrid.vector_stores.search(vector_store_id=vs.id, query="sourdough starter").data[0].filename
            == "bread.txt"
        )
        embedded = [r for r in provider.requests[requests_before:] if r.get("model") == "scripted-embed"]
        assert any("leather seats" in " ".join(r["input"]) for r in embedded)  # chunks were embedded at ingestion

        # a file still being ingested is in use: it cannot be deleted until ingestion ends
        slow = hybrid.files.create(
            file=("slow.txt", b"Embedding this takes a while. [embed-slow:1.5]"), purpose="assistants"
        )
        hybrid.vector_stores.files.create(vector_store_id=vs.id, file_id=slow.id)
        with pytest.raises(openai.BadRequestError) as info:
            hybrid.files.delete(slow.id)
        assert info.value.code == "file_in_use" and hybrid.files.retrieve(slow.id).id == slow.id
        assert (
            hybrid.vector_stores.files.poll(file_id=slow.id, vector_store_id=vs.id, poll_interval_ms=50).status
            == "completed"
        )
        assert hybrid.files.delete(slow.id).deleted
        assert hybrid.vector_stores.retrieve(vs.id).file_counts.total == 2
    finally:
        server.stop()


def test_inline_vector_stores_in_tool_resources(client):
    doc = client.files.create(file=("faq.md", b"Refunds are accepted within 30 days."), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="openai/scripted",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [doc.id], "metadata": {"src": "inline"}}]}},
    )
    (vs_id,) = assistant.tool_resources.file_search.vector_store_ids
    assert (
        not hasattr(assistant.tool_resources.file_search, "vector_stores")
        or not assistant.tool_resources.file_search.vector_stores
    )
    store = client.vector_stores.retrieve(vs_id)
    assert store.metadata == {"src": "inline"} and store.file_counts.total == 1
    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [{"file_ids": [doc.id]}]}})
    (thread_vs,) = thread.tool_resources.file_search.vector_store_ids
    assert thread_vs != vs_id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [{"file_ids": ["file-nope"]}]}})


def test_vector_stores_are_tenant_scoped(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_API_KEYS": "key-a=acme,key-b=globex"}).start()
    try:
        a = openai.OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0)
        b = openai.OpenAI(base_url=server.base_url, api_key="key-b", max_retries=0)
        doc = a.files.create(file=("secret.txt", b"The acme secret formula."), purpose="assistants")
        vs = a.vector_stores.create(name="acme", file_ids=[doc.id])
        for call in (
            lambda: b.vector_stores.retrieve(vs.id),
            lambda: b.vector_stores.search(vector_store_id=vs.id, query="secret formula"),
            lambda: b.vector_stores.files.list(vector_store_id=vs.id),
            lambda: b.files.retrieve(doc.id),
            lambda: b.vector_stores.create(name="steal", file_ids=[doc.id]),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        a.vector_stores.files.poll(file_id=doc.id, vector_store_id=vs.id, poll_interval_ms=50)
        assert a.vector_stores.search(vector_store_id=vs.id, query="secret formula").data[0].file_id == doc.id
    finally:
        server.stop()


def test_cancelling_a_batch_and_score_threshold(provider, tmp_path, store_env):
    server = Server(tmp_path, provider, {**store_env, "ASSISTD_EMBEDDING_MODEL": "openai/scripted-embed"}).start()
    try:
        client = server.client()
        vs = client.vector_stores.create(name="cancel")
        slow = [
            client.files.create(file=(f"s{i}.txt", f"slow file {i} [embed-slow:2]".encode()), purpose="assistants").id
            for i in range(3)
        ]
        batch = client.vector_stores.file_batches.create(vector_store_id=vs.id, file_ids=slow)
        cancelled = client.vector_stores.file_batches.cancel(batch_id=batch.id, vector_store_id=vs.id)
        assert cancelled.status == "cancelled" and cancelled.file_counts.in_progress == 0
        assert (
            cancelled.file_counts.cancelled + cancelled.file_counts.completed == 3
            and cancelled.file_counts.cancelled >= 1
        )
        listed = client.vector_stores.file_batches.list_files(
            batch_id=batch.id, vector_store_id=vs.id, filter="cancelled"
        ).data
        assert len(listed) == cancelled.file_counts.cancelled
        # a cancelled file's chunks never become searchable, even once its ingestion would have ended
        other = client.files.create(file=("other.txt", b"another slow file [embed-slow:2.5]"), purpose="assistants")
        client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=other.id, poll_interval_ms=50)
        found = {r.file_id for r in client.vector_stores.search(vector_store_id=vs.id, query="slow file").data}
        assert other.id in found and not found & {f.id for f in listed}

        # a weaker hit that the threshold must remove, while the best hit stays
        near = client.files.create(file=("near.txt", b"A file on its own."), purpose="assistants")
        client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=near.id, poll_interval_ms=50)
        ranked = client.vector_stores.search(vector_store_id=vs.id, query="another slow file").data
        assert ranked[0].file_id == other.id and ranked[0].score == 1.0
        near_scores = [r.score for r in ranked if r.file_id == near.id]
        assert near_scores and max(near_scores) < 0.99  # present, and under the threshold
        strict = client.vector_stores.search(
            vector_store_id=vs.id, query="another slow file", ranking_options={"score_threshold": 0.99}
        ).data
        assert [r.file_id for r in strict] == [r.file_id for r in ranked if r.score >= 0.99]
        assert strict[0].file_id == other.id and near.id not in {r.file_id for r in strict}
    finally:
        server.stop()
