"""Parsing and chunking for ingestion."""

import json

import pytest
from assistd.v1 import vector_store_pb2

from edge.codec import parse
from service.llm.tokens import encoding
from service.retrieval.chunk import chunk_text
from service.retrieval.parse import ParseError, extract_text
from service.retrieval.search import matches, terms_of
from tests import documents


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("a.txt", b"plain words", "plain words"),
        ("a.md", "# Title\n\u00e9t\u00e9".encode(), "\u00e9t\u00e9"),
        ("a.py", b"def f():\n    return 42\n", "return 42"),
        ("a.csv", b"city,temp\nOslo,4\n", "Oslo,4"),
        ("a.json", json.dumps({"answer": 42}).encode(), '"answer": 42'),
        (
            "a.html",
            b"<html><head><style>p{}</style></head><body><p>Visible</p><script>hidden()</script></body></html>",
            "Visible",
        ),
        ("a.pdf", documents.pdf("Saturn V"), "Saturn V"),
        ("a.docx", documents.docx("Espresso"), "Espresso"),
    ],
)
def test_each_format_gives_its_text(name, data, expected):
    text = extract_text(name, data)
    assert expected in text and "hidden()" not in text and "p{}" not in text


@pytest.mark.parametrize(
    "name, data, code",
    [
        ("a.bin", b"\x00\x01", "unsupported_file"),
        ("a.pdf", b"not a pdf", "invalid_file"),
        ("a.txt", b"   ", "invalid_file"),
        ("a.json", b"{broken", "invalid_file"),
        ("a.txt", b"\xff\xfe\xfa", "invalid_file"),
    ],
)
def test_what_cannot_be_read_fails_with_a_code(name, data, code):
    with pytest.raises(ParseError) as info:
        extract_text(name, data)
    assert info.value.code == code


def test_static_chunks_have_the_size_and_overlap_asked_for():
    text = " ".join(f"w{i}" for i in range(5000))
    chunks = chunk_text(text, 200, 50)
    sizes = [len(encoding().encode(c)) for c in chunks]
    assert max(sizes) <= 201 and sizes[0] >= 199
    first, second = encoding().encode(chunks[0]), encoding().encode(chunks[1])
    assert first[-50:] == second[:50]  # consecutive chunks share the overlap
    assert chunk_text("short text") == ["short text"]


def test_query_terms_and_attribute_filters():
    assert terms_of(["What is the capital of France?"]) == ["capital", "france"]
    assert terms_of(["the"]) == ["the"]  # only stop words: keep them rather than search nothing
    flt = parse(
        {
            "type": "or",
            "filters": [{"type": "eq", "key": "k", "value": "a"}, {"type": "in", "key": "n", "value": [1, 2]}],
        },
        vector_store_pb2.AttributeFilter,
    )
    assert matches(flt, {"k": "a"}) and matches(flt, {"n": 2}) and not matches(flt, {"k": "b", "n": 3})
