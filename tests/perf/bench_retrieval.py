"""Retrieval benchmarks: ingestion throughput (parse + chunk + index) and search latency over
10k chunks, through the real HTTP API (openai SDK) into `assistd serve` on SQLite."""

import random
import statistics
import time

from service.retrieval.chunk import chunk_text
from tests import documents
from tests.perf.stats import percentile

WORDS = [
    f"{a}{b}"
    for a in ("kor", "ven", "tal", "mir", "sup", "dra", "lon", "qua")
    for b in ("ix", "um", "et", "ora", "an", "is", "ol", "ek")
]
PAGE_CHARS = 2500  # about one printed page


def _text(rng: random.Random, chars: int) -> str:
    words = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS) + str(rng.randint(0, 999))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def run(client) -> str:
    """Runs the retrieval benchmarks against a server and returns their BENCHMARKS.md section."""
    rng = random.Random(7)

    # 1. PDF ingestion: 8 files of 25 pages, default chunking (800/400 tokens)
    pdfs = [documents.pdf(*(_text(rng, PAGE_CHARS) for _ in range(25))) for _ in range(8)]
    file_ids = [client.files.create(file=(f"doc{i}.pdf", data), purpose="assistants").id for i, data in enumerate(pdfs)]
    vs = client.vector_stores.create(name="bench-pdf")
    start = time.perf_counter()
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=vs.id, file_ids=file_ids, poll_interval_ms=20
    )
    pdf_seconds = time.perf_counter() - start
    assert batch.file_counts.completed == len(pdfs), batch.file_counts
    pages = 25 * len(pdfs)

    # 2. 10k chunks of text: 40 files, 100-token chunks without overlap
    files = [_text(rng, 74_000) for _ in range(40)]  # ~250 chunks of 100 tokens each: ~10k in all
    chunk_count = sum(len(chunk_text(t, 100, 0)) for t in files)
    text_ids = [
        client.files.create(file=(f"t{i}.txt", t.encode()), purpose="assistants").id for i, t in enumerate(files)
    ]
    corpus = client.vector_stores.create(name="bench-10k")
    start = time.perf_counter()
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=corpus.id,
        file_ids=text_ids,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}},
        poll_interval_ms=20,
    )
    text_seconds = time.perf_counter() - start
    assert batch.file_counts.completed == len(files), batch.file_counts
    total_bytes = sum(len(t) for t in files)

    # 3. search latency over the 10k-chunk store
    latencies = []
    for _ in range(200):
        query = " ".join(rng.choice(WORDS) + str(rng.randint(0, 999)) for _ in range(3))
        t0 = time.perf_counter()
        client.vector_stores.search(vector_store_id=corpus.id, query=query, max_num_results=10)
        latencies.append(time.perf_counter() - t0)

    return f"""## Retrieval: ingestion and keyword search

Through the HTTP API into `assistd serve` (SQLite, keyword-only search: FTS5 BM25), as the openai SDK calls it.
Ingestion = parse + chunk (tiktoken cl100k_base) + index, in background worker threads (2 at a time), timed from
the batch request until `file_counts.in_progress == 0` (polled every 20 ms).

| what | result |
|---|---|
| PDF ingestion, {len(pdfs)} files x 25 pages (~{PAGE_CHARS} chars/page), chunks 800/400 tokens | {pages / pdf_seconds:,.0f} pages/s ({pdf_seconds:.2f} s) |
| text ingestion, {len(files)} files, {total_bytes / 1e6:.1f} MB into {chunk_count:,} chunks of 100 tokens | {total_bytes / 1e6 / text_seconds:.2f} MB/s, {chunk_count / text_seconds:,.0f} chunks/s ({text_seconds:.2f} s) |
| `vector_stores.search` over those {chunk_count:,} chunks, 3-word queries, top 10, 200 requests | p50 {statistics.median(latencies) * 1000:.1f} ms / p99 {percentile(latencies, 99) * 1000:.1f} ms |
"""
