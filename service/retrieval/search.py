"""Searching vector stores: keyword (SQLite FTS5 BM25) over the chunks, attribute filters, and
scores in [0, 1] (the best hit of a search scores 1)."""

import re
from dataclasses import dataclass
from typing import Any

from assistd.v1 import file_pb2, vector_store_pb2
from google.protobuf import json_format

from service.protojson import struct_to_python
from service.repo import Repo

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
    if flt.type in ("and", "or"):
        results = (matches(f, attributes) for f in flt.filters)
        return all(results) if flt.type == "and" else any(results)
    target = json_format.MessageToDict(flt.value) if flt.HasField("value") else None
    value = attributes.get(flt.key)
    if flt.type == "eq":
        return value == target
    if flt.type == "ne":
        return value != target
    if flt.type == "in":
        return isinstance(target, list) and value in target
    if flt.type == "nin":
        return isinstance(target, list) and value not in target
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, target))
    if not numbers:
        return False
    return {"gt": value > target, "gte": value >= target, "lt": value < target, "lte": value <= target}.get(flt.type, False)


async def search(
    repo: Repo,
    tenant: str,
    vector_store_ids: list[str],
    queries: list[str],
    max_results: int,
    score_threshold: float = 0.0,
    flt: vector_store_pb2.AttributeFilter | None = None,
) -> list[Hit]:
    """The best chunks for the queries across the vector stores, best first."""
    raw = await repo.store.search_chunks(tenant, vector_store_ids, terms_of(queries), limit=max_results * 5)
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
        if vs_file is None or vs_file.status != "completed":
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
