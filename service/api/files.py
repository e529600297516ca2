"""FileService: uploads streamed in chunks (no message size cap), metadata, content, deletion."""

from assistd.v1 import common_pb2, file_pb2, file_pb2_grpc, vector_store_pb2

from service import ids
from service.api.common import list_query, page, streaming, unary
from service.errors import FailedPrecondition, FileTooLarge, not_found
from service.protojson import enum_name
from service.repo import kind_of
from service.retrieval.ingest import Ingestor
from service.store import BlobStore
from service.validation import check_filename, check_request, check_upload


class FileService(file_pb2_grpc.FileServiceServicer):
    def __init__(self, auth, repo, blobs: BlobStore, max_bytes: int, ingestor: Ingestor):
        self.auth = auth
        self.repo = repo
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.ingestor = ingestor

    @unary
    async def UploadFile(self, tenant, request_iterator, context):
        """Writes the chunks to a blob as they arrive, then records the file. A bad or oversized
        upload leaves nothing behind."""
        file = file_pb2.File(
            id=ids.new_id("file-"), object="file", created_at=ids.now(), status=file_pb2.FILE_STATUS_PROCESSED
        )
        expires_after = None

        async def chunks():
            nonlocal expires_after
            async for part in request_iterator:
                check_request(part)  # a client stream: the servicer decorator sees no single request
                if part.HasField("filename"):
                    check_filename(part.filename)
                    file.filename = part.filename
                if part.HasField("purpose"):
                    file.purpose = part.purpose
                if part.HasField("expires_after_seconds"):
                    expires_after = part.expires_after_seconds
                if part.chunk:
                    file.bytes += len(part.chunk)
                    if file.bytes > self.max_bytes:
                        raise FileTooLarge(
                            f"File is too large: the limit is {self.max_bytes} bytes.",
                            param="file",
                            code="file_too_large",
                        )
                    yield part.chunk

        await self.blobs.write(tenant, file.id, chunks())
        try:
            check_upload(file, expires_after)
            if expires_after is not None:
                file.expires_at = file.created_at + expires_after
            await self.repo.put(tenant, file)
        except BaseException:
            await self.blobs.delete(tenant, file.id)
            raise
        return file_pb2.UploadFileResponse(file=file)

    @unary
    async def GetFile(self, tenant, request, context):
        return file_pb2.GetFileResponse(file=await self.repo.require(tenant, file_pb2.File, request.file_id))

    @unary
    async def ListFiles(self, tenant, request, context):
        query = list_query(request, default=10_000, maximum=10_000)
        purpose = enum_name(file_pb2.FilePurpose.DESCRIPTOR, request.purpose) or ""
        items, has_more = await self.repo.list_page(tenant, file_pb2.File, "", query, purpose)
        return page(file_pb2.ListFilesResponse(), items, has_more)

    @streaming
    async def GetFileContent(self, tenant, request, context):
        await self.repo.require(tenant, file_pb2.File, request.file_id)
        async for chunk in self.blobs.read(tenant, request.file_id):
            yield file_pb2.GetFileContentResponse(chunk=chunk)

    @unary
    async def DeleteFile(self, tenant, request, context):
        """Deletes the file, and takes it out of every vector store that holds it."""
        file_id = request.file_id
        await self.repo.require(tenant, file_pb2.File, file_id)
        holders = await self.repo.store.parents_of(tenant, kind_of(vector_store_pb2.VectorStoreFile), file_id)
        for vs_id in holders:
            vs_file = await self.repo.get(tenant, vector_store_pb2.VectorStoreFile, file_id, vs_id)
            if vs_file is not None and vs_file.status == vector_store_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS:
                raise FailedPrecondition(
                    f"File {file_id} is in use: vector store {vs_id} is still ingesting it. Delete it once "
                    "ingestion ends, or remove it from the vector store first.",
                    param="file_id",
                    code="file_in_use",
                )
        for vs_id in holders:
            async with self.ingestor.locks[(tenant, vs_id, file_id)]:
                await self.repo.delete(tenant, vector_store_pb2.VectorStoreFile, file_id, vs_id)
                await self.repo.store.delete_chunks(tenant, vs_id, file_id)
        if not await self.repo.delete(tenant, file_pb2.File, file_id):
            raise not_found("file", file_id)
        await self.blobs.delete(tenant, file_id)
        status = common_pb2.DeletionStatus(id=request.file_id, object="file", deleted=True)
        return file_pb2.DeleteFileResponse(status=status)
