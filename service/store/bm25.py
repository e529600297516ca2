"""Keyword ranking for stores without a built-in one (Cassandra): the terms a text is indexed
under, and Okapi BM25 over postings read from an inverted index. Pure functions, no I/O.

(SQLite ranks with FTS5's own bm25() and porter stemming, so it does not use this module.)"""

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

_WORD = re.compile(r"\w+", re.UNICODE)

# The usual defaults (Robertson & Zaragoza), the same values SQLite FTS5 uses.
K1 = 1.2
B = 0.75
Doc = TypeVar("Doc", bound=Hashable)  # whatever names a document: (file id, chunk index) for chunks


def normal(word: str) -> str:
    """A term as indexed: lower case, a plural `s` dropped (so `zebras` finds `zebra`)."""
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def term_counts(text: str) -> dict[str, int]:
    """How often each term occurs in text; the sum of the counts is the text's length."""
    counts: dict[str, int] = {}
    for word in _WORD.findall(text):
        term = normal(word)
        counts[term] = counts.get(term, 0) + 1
    return counts


def rank(
    postings: Mapping[str, Sequence[tuple[Doc, int]]],
    lengths: Mapping[Doc, int],
    k1: float = K1,
    b: float = B,
) -> list[tuple[Doc, float]]:
    """(document, score) best first, from postings {term: [(document, term frequency)]} and the
    length of every document in the collection. CPU work: run it off the event loop."""
    if not lengths:
        return []
    count = len(lengths)
    average = sum(lengths.values()) / count or 1.0
    scores: dict[Doc, float] = {}
    for rows in postings.values():
        idf = math.log(1 + (count - len(rows) + 0.5) / (len(rows) + 0.5))
        for document, tf in rows:
            length = lengths.get(document, average)
            scores[document] = scores.get(document, 0.0) + idf * tf * (k1 + 1) / (
                tf + k1 * (1 - b + b * length / average)
            )
    return sorted(scores.items(), key=lambda item: -item[1])
