"""Searching vector stores: keyword (SQLite FTS5 BM25) over the chunks, attribute filters, and
scores in [0, 1] (the best hit of a search scores 1)."""

import logging
import re
from dataclasses import dataclass
from typing import Any

from assistd.v1 import file_pb2, vector_store_pb2
from google.protobuf import json_format

from service.llm import ProviderError
from service.protojson import struct_to_python
from service.repo import Repo
from service.retrieval.embed import Embedder
from service.store import ChunkHit

log = logging.getLogger(__name__)
V = vector_store_pb2
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that say nothing about a topic; matching them only adds noise to keyword ranking.
_STOP_WORDS = frozenset(
    "a an and are as at be by did do does for from has have how i in is it its of on or that the this to "
    "was were what when where which who why with".split()
)


@dataclass
class Hit:
    vector_store_id: str
    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict[str, Any]


def terms_of(queries: list[str]) -> list[str]:
    words = {word.lower() for query in queries for word in _WORD.findall(query)}
    return sorted(words - _STOP_WORDS or words)


def matches(flt: vector_store_pb2.AttributeFilter, attributes: dict[str, Any]) -> bool:
    """Whether attributes pass an OpenAI attribute filter (comparison or compound)."""
    if flt.WhichOneof("filter") == "compound":
        results = (matches(f, attributes) for f in flt.compound.filters)
        return all(results) if flt.compound.type == V.COMPOUND_OPERATOR_AND else any(results)
    comparison = flt.comparison
    op = comparison.type
    target = json_format.MessageToDict(comparison.value) if comparison.HasField("value") else None
    value = attributes.get(comparison.key)
    if op == V.COMPARISON_OPERATOR_EQ:
        return value == target
    if op == V.COMPARISON_OPERATOR_NE:
        return value != target
    if op == V.COMPARISON_OPERATOR_IN:
        return isinstance(target, list) and value in target
    if op == V.COMPARISON_OPERATOR_NIN:
        return isinstance(target, list) and value not in target
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, target)):
        return False
    assert isinstance(value, (int, float)) and isinstance(target, (int, float))
    return {
        V.COMPARISON_OPERATOR_GT: value > target,
        V.COMPARISON_OPERATOR_GTE: value >= target,
        V.COMPARISON_OPERATOR_LT: value < target,
        V.COMPARISON_OPERATOR_LTE: value <= target,
    }.get(op, False)


RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)


def fuse(rankings: list[list[ChunkHit]]) -> list[ChunkHit]:
    """Reciprocal rank fusion of several best-first lists; rank becomes the fused score."""
    scores: dict[tuple[str, str, int], float] = {}
    chunks: dict[tuple[str, str, int], ChunkHit] = {}
    for ranking in rankings:
        for position, hit in enumerate(ranking):
            key = (hit.vector_store_id, hit.file_id, hit.chunk_index)
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + position + 1)
            chunks.setdefault(key, hit)
    ordered = sorted(scores, key=lambda key: -scores[key])
    return [ChunkHit(*key, chunks[key].text, scores[key]) for key in ordered]


async def search(
    repo: Repo,
    tenant: str,
    vector_store_ids: list[str],
    queries: list[str],
    max_results: int,
    score_threshold: float = 0.0,
    flt: vector_store_pb2.AttributeFilter | None = None,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """The best chunks for the queries across the vector stores, best first: keyword ranking,
    fused with vector ranking when there is an embedder."""
    depth = max_results * 5
    raw = await repo.store.search_chunks(tenant, vector_store_ids, terms_of(queries), limit=depth)
    if embedder is not None:
        try:
            vectors = await embedder.embed(queries)
        except ProviderError as exc:  # the embedding provider is down: keyword results still help
            log.warning("query embedding failed, searching by keyword only: %s", exc.message)
            vectors = []
        rankings = [raw]
        for vector in vectors:
            rankings.append(await repo.store.search_vectors(tenant, vector_store_ids, vector, depth))
        raw = fuse(rankings)
    if not raw:
        return []
    best = max(hit.rank for hit in raw) or 1.0
    files: dict[tuple[str, str], vector_store_pb2.VectorStoreFile | None] = {}
    names: dict[str, str] = {}
    hits = []
    for chunk in raw:
        key = (chunk.vector_store_id, chunk.file_id)
        if key not in files:
            files[key] = await repo.get(tenant, vector_store_pb2.VectorStoreFile, chunk.file_id, chunk.vector_store_id)
        vs_file = files[key]
        if vs_file is None or vs_file.status != V.VECTOR_STORE_FILE_STATUS_COMPLETED:
            continue
        attributes = struct_to_python(vs_file.attributes)
        if flt is not None and not matches(flt, attributes):
            continue
        score = max(0.0, min(1.0, chunk.rank / best))
        if score < score_threshold:
            continue
        if chunk.file_id not in names:
            file = await repo.get(tenant, file_pb2.File, chunk.file_id)
            names[chunk.file_id] = file.filename if file else ""
        hits.append(Hit(chunk.vector_store_id, chunk.file_id, names[chunk.file_id], score, chunk.text, attributes))
        if len(hits) == max_results:
            break
    return hits
