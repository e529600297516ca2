"""BM25 keyword ranking (service/store/bm25.py): indexing terms and scores, no store needed."""

import math

from service.store import bm25


def test_terms_are_lower_case_words_with_a_plural_s_dropped():
    assert bm25.term_counts("Zebras and zebra; the GLASS, the glass!") == {
        "zebra": 2,
        "and": 1,
        "the": 2,
        "glass": 2,
    }
    assert bm25.normal("bus") == "bus"  # too short to be a plural
    assert bm25.normal("Kiss") == "kiss"  # a double s is not a plural
    assert bm25.term_counts("") == {}


def test_rarer_terms_and_more_occurrences_rank_higher():
    lengths = {"a": 10, "b": 10, "c": 10, "d": 10}
    postings = {
        "common": [("a", 1), ("b", 1), ("c", 1)],
        "rare": [("d", 1)],
    }
    ranked = dict(bm25.rank(postings, lengths))
    assert max(ranked, key=ranked.get) == "d"  # the rare term weighs more
    assert ranked["a"] == ranked["b"] == ranked["c"]
    more = dict(bm25.rank({"t": [("a", 3), ("b", 1)]}, {"a": 10, "b": 10}))
    assert more["a"] > more["b"]


def test_shorter_documents_win_at_equal_frequency_and_the_score_is_okapi():
    ranked = bm25.rank({"t": [("short", 1), ("long", 1)]}, {"short": 5, "long": 15, "other": 10})
    assert [doc for doc, _ in ranked] == ["short", "long"]
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    expected = idf * 1 * (bm25.K1 + 1) / (1 + bm25.K1 * (1 - bm25.B + bm25.B * 5 / 10))
    assert math.isclose(dict(ranked)["short"], expected)


def test_an_empty_collection_ranks_nothing():
    assert bm25.rank({"t": []}, {}) == []
    assert bm25.rank({}, {"a": 3}) == []
