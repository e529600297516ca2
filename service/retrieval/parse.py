"""Text out of an uploaded file: plain text and code, markdown, html, json, csv, pdf, docx.
CPU work: call it from a worker thread."""

import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath

TEXT_EXTENSIONS = {
    ".txt",
    ".md",
    ".markdown",
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".xml",
    ".yaml",
    ".yml",
    ".log",
    ".rst",
    ".tex",
    ".py",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".java",
    ".go",
    ".rs",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".rb",
    ".php",
    ".sh",
    ".sql",
    ".swift",
    ".kt",
    ".scala",
    ".css",
    ".toml",
    ".ini",
    ".proto",
}


class ParseError(Exception):
    """A file that cannot be ingested, with the OpenAI `last_error.code` for it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _HtmlText(HTMLParser):
    _SKIP = {"script", "style", "head"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in {"p", "div", "li", "br", "h1", "h2", "h3", "h4", "tr"}:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("invalid_file", "The file is not valid UTF-8 text.") from None


def extract_text(filename: str, data: bytes) -> str:
    """The file's text. Raises ParseError (unsupported_file / invalid_file) when there is none."""
    extension = PurePosixPath(filename.lower()).suffix
    try:
        if extension == ".pdf":
            from pypdf import PdfReader

            text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
        elif extension == ".docx":
            import docx

            text = "\n".join(paragraph.text for paragraph in docx.Document(io.BytesIO(data)).paragraphs)
        elif extension in (".html", ".htm"):
            parser = _HtmlText()
            parser.feed(_decode(data))
            text = "".join(parser.parts)
        elif extension == ".json":
            text = json.dumps(json.loads(_decode(data)), indent=1, ensure_ascii=False)
        elif extension in TEXT_EXTENSIONS:
            text = _decode(data)
        else:
            raise ParseError("unsupported_file", f"Files of type '{extension or filename}' are not supported.")
    except ParseError:
        raise
    except Exception as exc:  # the parsers' own errors: a damaged pdf, docx or json
        raise ParseError("invalid_file", f"The file could not be parsed: {exc}") from exc
    if not text.strip():
        raise ParseError("invalid_file", "The file contains no text.")
    return text
