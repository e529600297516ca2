"""Background ingestion of vector store files: parse, chunk, index. CPU work runs in worker
threads, a few files at a time, so the event loop and the runs never wait for it."""

import asyncio
import logging
from typing import cast

from assistd.v1 import file_pb2, vector_store_pb2

from service.llm import ProviderError
from service.locks import KeyedLocks
from service.protojson import enum_number
from service.repo import Repo, kind_of
from service.retrieval.chunk import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, chunk_text
from service.retrieval.embed import Embedder
from service.retrieval.parse import ParseError, extract_text
from service.store import BlobStore

log = logging.getLogger(__name__)

VectorStoreFile = vector_store_pb2.VectorStoreFile
IN_PROGRESS = vector_store_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS


class Ingestor:
    def __init__(self, repo: Repo, blobs: BlobStore, embedder: Embedder | None = None, concurrency: int = 2):
        self._repo = repo
        self._blobs = blobs
        self._embedder = embedder
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task] = set()
        # One lock per (tenant, vector store, file): ingestion's end vs cancel/delete.
        self.locks = KeyedLocks()

    def submit(self, tenant: str, vs_file: VectorStoreFile) -> None:
        task = asyncio.create_task(self._ingest(tenant, vs_file.vector_store_id, vs_file.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def submit_all(self, tenant: str, vs_files) -> None:
        for vs_file in vs_files:
            self.submit(tenant, vs_file)

    async def recover(self) -> int:
        """Re-queues files a previous process left in_progress."""
        pending = await self._repo.store.objects_with_tag(kind_of(VectorStoreFile), "in_progress")
        for tenant, data in pending:
            self.submit(tenant, VectorStoreFile.FromString(data))
        return len(pending)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _ingest(self, tenant: str, vs_id: str, file_id: str) -> None:
        async with self._slots:
            error: ParseError | None = None
            chunks: list[str] = []
            try:
                vs_file = await self._repo.get(tenant, VectorStoreFile, file_id, vs_id)
                if vs_file is None or vs_file.status != IN_PROGRESS:
                    return
                file = await self._repo.get(tenant, file_pb2.File, file_id)
                if file is None:
                    raise ParseError("invalid_file", f"File {file_id} was deleted.")
                data = b"".join([chunk async for chunk in self._blobs.read(tenant, file_id)])
                static = vs_file.chunking_strategy.static
                text = await asyncio.to_thread(extract_text, file.filename, data)
                chunks = await asyncio.to_thread(
                    chunk_text,
                    text,
                    static.max_chunk_size_tokens or DEFAULT_MAX_TOKENS,
                    static.chunk_overlap_tokens if static.max_chunk_size_tokens else DEFAULT_OVERLAP,
                )
                vectors = await self._embedder.embed(chunks) if self._embedder and chunks else []
                await self._repo.store.index_chunks(tenant, vs_id, file_id, chunks, vectors)
            except ParseError as exc:
                error = exc
            except ProviderError as exc:
                error = ParseError("server_error", f"Embedding the file failed: {exc.message}")
            except asyncio.CancelledError:
                raise  # stopping: recover() picks the file up at the next start
            except Exception as exc:
                log.exception("ingesting %s into %s failed", file_id, vs_id)
                error = ParseError("server_error", f"The file could not be processed: {exc}")
            await self._finish(tenant, vs_id, file_id, chunks, error)

    async def _finish(self, tenant, vs_id, file_id, chunks, error) -> None:
        async with self.locks[(tenant, vs_id, file_id)]:
            vs_file = await self._repo.get(tenant, VectorStoreFile, file_id, vs_id)
            if vs_file is None or vs_file.status != IN_PROGRESS:  # deleted or cancelled meanwhile
                await self._repo.store.delete_chunks(tenant, vs_id, file_id)
                return
            if error is None:
                vs_file.status = vector_store_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
                vs_file.usage_bytes = sum(len(c.encode()) for c in chunks)
            else:
                vs_file.status = vector_store_pb2.VECTOR_STORE_FILE_STATUS_FAILED
                code = enum_number(vector_store_pb2.VectorStoreFileErrorCode.DESCRIPTOR, error.code)
                vs_file.last_error.code = cast(
                    vector_store_pb2.VectorStoreFileErrorCode,
                    code or vector_store_pb2.VECTOR_STORE_FILE_ERROR_CODE_SERVER_ERROR,
                )
                vs_file.last_error.message = error.message
            await self._repo.put(tenant, vs_file)
