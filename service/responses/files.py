"""input_file content parts by `file_id`: the model is given the file's text, extracted as
file_search ingestion extracts it (service/retrieval/parse.py), as OpenAI gives models the text
of input files. A file whose type has no text is a 400 naming the part."""

import asyncio

from assistd.v1 import file_pb2

from service.errors import InvalidArgument, NotFound
from service.repo import Repo
from service.responses.request import ResponseRequest
from service.retrieval.parse import ParseError, extract_text
from service.store import BlobStore


async def add_file_texts(repo: Repo, blobs: BlobStore, tenant: str, request: ResponseRequest) -> None:
    """Fills each input_file part of the request with its file's name and text."""
    for part, shown, file_id, param in request.files:
        file = await repo.get(tenant, file_pb2.File, file_id)
        if file is None:
            raise NotFound(f"No such File object: {file_id}", param=param)
        data = b"".join([chunk async for chunk in blobs.read(tenant, file_id)])
        try:
            text = await asyncio.to_thread(extract_text, file.filename, data)
        except ParseError as error:
            raise InvalidArgument(
                f"Invalid '{param}': the file '{file.filename}' has no text to give the model "
                f"({error.message}). Supported are text, Markdown, code, JSON, HTML, PDF and DOCX files.",
                param=param,
                code="unsupported_file",
            ) from None
        part.text.value = f"[file: {file.filename}]\n{text}"
        shown["filename"] = file.filename
