"""VectorStoreService: vector stores, their files and file batches, and search.

File counts, usage and status are computed from the files whenever a store or batch is read,
so they are exact at every moment."""

import base64
import hashlib

from assistd.v1 import common_pb2, vector_store_pb2_grpc
from assistd.v1 import vector_store_pb2 as vs_pb2

from service import ids
from service.api.common import apply_mask, list_query, page, unary
from service.errors import FailedPrecondition, InvalidArgument, not_found
from service.protojson import enum_name
from service.retrieval.embed import Embedder
from service.retrieval.ingest import Ingestor
from service.retrieval.search import search
from service.retrieval.stores import new_files, new_vector_store
from service.store import ListQuery, Record
from service.validation import check_attributes, check_expires_after, check_file_batch, check_metadata, check_search

_BATCH_MEMBER = "batch_file"  # store kind: (batch id) -> file id
_FILE_STATUS = vs_pb2.VectorStoreFileStatus.DESCRIPTOR
IN_PROGRESS = vs_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
MAX_SEARCH_WINDOW = 200  # how deep search pages go (search reads 5x as deep; Cassandra ANN stops at 1000)


def _counts(files: list[vs_pb2.VectorStoreFile]) -> vs_pb2.FileCounts:
    counts = vs_pb2.FileCounts(total=len(files))
    for f in files:
        name = enum_name(_FILE_STATUS, f.status)
        if name is not None:
            setattr(counts, name, getattr(counts, name) + 1)
    return counts


def _search_fingerprint(request: vs_pb2.SearchVectorStoreRequest) -> str:
    """What a page token is bound to: the request without its page_token."""
    bare = vs_pb2.SearchVectorStoreRequest()
    bare.CopyFrom(request)
    bare.ClearField("page_token")
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()[:16]


def _page_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{fingerprint}".encode()).decode()


def _search_offset(request: vs_pb2.SearchVectorStoreRequest) -> int:
    """Where the requested page starts: 0, or what its page token says. A token that was not
    issued for these same search parameters is refused (AIP-158)."""
    if not request.page_token:
        return 0
    try:
        offset, fingerprint = base64.urlsafe_b64decode(request.page_token.encode()).decode().split(":")
        if fingerprint == _search_fingerprint(request) and 0 < int(offset) < MAX_SEARCH_WINDOW:
            return int(offset)
    except ValueError:
        pass
    raise InvalidArgument(
        "Invalid 'page_token': it must be the next_page of a search with the same parameters.",
        param="page_token",
        code="invalid_value",
    )


def _paginate(items: list, query: ListQuery) -> tuple[list, bool]:
    """A page of in-memory items sorted by id, with OpenAI's after/before/order semantics."""
    ordered = sorted(items, key=lambda item: item.id, reverse=query.order == "desc")
    if query.after:
        ordered = [i for i in ordered if (i.id > query.after) == (query.order == "asc") and i.id != query.after]
    if query.before:
        ordered = [i for i in ordered if (i.id < query.before) == (query.order == "asc") and i.id != query.before]
        if not query.after:
            return ordered[-query.limit :], len(ordered) > query.limit
    return ordered[: query.limit], len(ordered) > query.limit


class VectorStoreService(vector_store_pb2_grpc.VectorStoreServiceServicer):
    def __init__(self, auth, repo, ingestor: Ingestor, embedder: Embedder | None):
        self.auth = auth
        self.repo = repo
        self.ingestor = ingestor
        self.embedder = embedder

    # ---- helpers ------------------------------------------------------------------------

    async def _store(self, tenant, vs_id) -> vs_pb2.VectorStore:
        """The vector store with exact counts, usage and status."""
        store = await self.repo.require(tenant, vs_pb2.VectorStore, vs_id)
        files = await self.repo.all(tenant, vs_pb2.VectorStoreFile, vs_id)
        store.file_counts.CopyFrom(_counts(files))
        store.usage_bytes = sum(f.usage_bytes for f in files)
        store.status = (
            vs_pb2.VECTOR_STORE_STATUS_IN_PROGRESS
            if store.file_counts.in_progress
            else vs_pb2.VECTOR_STORE_STATUS_COMPLETED
        )
        return store

    async def _batch(self, tenant, vs_id, batch_id) -> vs_pb2.VectorStoreFileBatch:
        batch = await self.repo.require(tenant, vs_pb2.VectorStoreFileBatch, batch_id, vs_id)
        files = await self._batch_files(tenant, batch)
        batch.file_counts.CopyFrom(_counts(files))
        if batch.status == IN_PROGRESS and not batch.file_counts.in_progress:
            batch.status = vs_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
        return batch

    async def _batch_files(self, tenant, batch) -> list[vs_pb2.VectorStoreFile]:
        members = [
            m.decode()
            for m in (
                await self.repo.store.list_page(tenant, _BATCH_MEMBER, batch.id, ListQuery(limit=10_000, order="asc"))
            ).items
        ]
        files = [
            await self.repo.get(tenant, vs_pb2.VectorStoreFile, file_id, batch.vector_store_id) for file_id in members
        ]
        return [f for f in files if f is not None]

    async def _new_files(self, tenant, vs_id, specs, param: str) -> list[vs_pb2.VectorStoreFile]:
        return await new_files(self.repo, tenant, vs_id, specs, param)

    def _ingest(self, tenant, files) -> None:
        for f in files:
            self.ingestor.submit(tenant, f)

    # ---- vector stores ----------------------------------------------------------------

    @unary
    async def CreateVectorStore(self, tenant, request, context):
        check_metadata(request.metadata)
        check_expires_after(request)
        strategy = request.chunking_strategy if request.HasField("chunking_strategy") else None
        store = new_vector_store(request.name, request.metadata)
        if request.HasField("expires_after"):
            store.expires_after.CopyFrom(request.expires_after)
            store.expires_at = store.created_at + request.expires_after.days * 86400
        files = (
            await self._new_files(tenant, store.id, [(f, strategy, None) for f in request.file_ids], "file_ids")
            if request.file_ids
            else []
        )
        await self.repo.put(tenant, store, *files)
        self._ingest(tenant, files)
        return vs_pb2.CreateVectorStoreResponse(vector_store=await self._store(tenant, store.id))

    @unary
    async def GetVectorStore(self, tenant, request, context):
        return vs_pb2.GetVectorStoreResponse(vector_store=await self._store(tenant, request.vector_store_id))

    @unary
    async def UpdateVectorStore(self, tenant, request, context):
        store = await self.repo.require(tenant, vs_pb2.VectorStore, request.vector_store_id)
        check_metadata(request.vector_store.metadata)
        check_expires_after(request.vector_store)
        paths = request.update_mask.paths
        apply_mask(store, request.vector_store, paths)
        if "expires_after" in paths:
            if store.HasField("expires_after"):
                store.expires_at = ids.now() + store.expires_after.days * 86400
            else:
                store.ClearField("expires_at")
        await self.repo.put(tenant, store)
        return vs_pb2.UpdateVectorStoreResponse(vector_store=await self._store(tenant, store.id))

    @unary
    async def DeleteVectorStore(self, tenant, request, context):
        vs_id = request.vector_store_id
        await self.repo.require(tenant, vs_pb2.VectorStore, vs_id)
        for f in await self.repo.all(tenant, vs_pb2.VectorStoreFile, vs_id):
            async with self.ingestor.locks[(tenant, vs_id, f.id)]:
                await self.repo.delete(tenant, vs_pb2.VectorStoreFile, f.id, vs_id)
        await self.repo.store.delete_chunks(tenant, vs_id)
        await self.repo.delete(tenant, vs_pb2.VectorStore, vs_id)
        status = common_pb2.DeletionStatus(id=vs_id, object="vector_store.deleted", deleted=True)
        return vs_pb2.DeleteVectorStoreResponse(status=status)

    @unary
    async def ListVectorStores(self, tenant, request, context):
        items, has_more = await self.repo.list_page(tenant, vs_pb2.VectorStore, "", list_query(request))
        stores = [await self._store(tenant, s.id) for s in items]
        return page(vs_pb2.ListVectorStoresResponse(), stores, has_more)

    @unary
    async def SearchVectorStore(self, tenant, request, context):
        """One page of hits, max_num_results long: page n+1 is searched as the best
        (n+1) * max_num_results + 1 hits, so hits are ranked the same on every page."""
        queries, limit, threshold = check_search(request)
        offset = _search_offset(request)
        await self.repo.require(tenant, vs_pb2.VectorStore, request.vector_store_id)
        window = min(offset + limit + 1, MAX_SEARCH_WINDOW)
        hits = await search(
            self.repo,
            tenant,
            [request.vector_store_id],
            queries,
            window,
            threshold,
            request.filters if request.HasField("filters") else None,
            self.embedder,
        )
        response = vs_pb2.SearchVectorStoreResponse(object="vector_store.search_results.page", search_query=queries)
        for hit in hits[offset : offset + limit]:
            result = response.data.add(file_id=hit.file_id, filename=hit.filename, score=hit.score)
            result.attributes.update(hit.attributes)
            result.content.add(text=hit.text)
        if len(hits) > offset + limit and offset + limit < MAX_SEARCH_WINDOW:
            response.has_more = True
            response.next_page = _page_token(offset + limit, _search_fingerprint(request))
        return response

    # ---- vector store files -----------------------------------------------------------

    @unary
    async def CreateVectorStoreFile(self, tenant, request, context):
        vs_id = request.vector_store_id
        await self.repo.require(tenant, vs_pb2.VectorStore, vs_id)
        existing = await self.repo.get(tenant, vs_pb2.VectorStoreFile, request.file_id, vs_id)
        if existing is not None:
            return vs_pb2.CreateVectorStoreFileResponse(file=existing)
        (vs_file,) = await self._new_files(
            tenant, vs_id, [(request.file_id, request.chunking_strategy, request.attributes)], "file_id"
        )
        await self.repo.put(tenant, vs_file)
        self._ingest(tenant, [vs_file])
        return vs_pb2.CreateVectorStoreFileResponse(file=vs_file)

    @unary
    async def GetVectorStoreFile(self, tenant, request, context):
        await self.repo.require(tenant, vs_pb2.VectorStore, request.vector_store_id)
        vs_file = await self.repo.require(tenant, vs_pb2.VectorStoreFile, request.file_id, request.vector_store_id)
        return vs_pb2.GetVectorStoreFileResponse(file=vs_file)

    @unary
    async def UpdateVectorStoreFile(self, tenant, request, context):
        check_attributes(request.file.attributes)
        key = (tenant, request.vector_store_id, request.file_id)
        async with self.ingestor.locks[key]:
            vs_file = await self.repo.require(tenant, vs_pb2.VectorStoreFile, request.file_id, request.vector_store_id)
            apply_mask(vs_file, request.file, request.update_mask.paths)
            await self.repo.put(tenant, vs_file)
        return vs_pb2.UpdateVectorStoreFileResponse(file=vs_file)

    @unary
    async def DeleteVectorStoreFile(self, tenant, request, context):
        vs_id, file_id = request.vector_store_id, request.file_id
        async with self.ingestor.locks[(tenant, vs_id, file_id)]:
            if not await self.repo.delete(tenant, vs_pb2.VectorStoreFile, file_id, vs_id):
                raise not_found("vector store file", file_id)
            await self.repo.store.delete_chunks(tenant, vs_id, file_id)
        status = common_pb2.DeletionStatus(id=file_id, object="vector_store.file.deleted", deleted=True)
        return vs_pb2.DeleteVectorStoreFileResponse(status=status)

    @unary
    async def ListVectorStoreFiles(self, tenant, request, context):
        query = list_query(request)
        await self.repo.require(tenant, vs_pb2.VectorStore, request.vector_store_id)
        items, has_more = await self.repo.list_page(
            tenant,
            vs_pb2.VectorStoreFile,
            request.vector_store_id,
            query,
            enum_name(_FILE_STATUS, request.filter) or "",
        )
        return page(vs_pb2.ListVectorStoreFilesResponse(), items, has_more)

    # ---- file batches -------------------------------------------------------------------

    @unary
    async def CreateFileBatch(self, tenant, request, context):
        vs_id = request.vector_store_id
        check_file_batch(request)
        await self.repo.require(tenant, vs_pb2.VectorStore, vs_id)
        specs = [(f, request.chunking_strategy, request.attributes) for f in request.file_ids] or [
            (f.file_id, f.chunking_strategy, f.attributes) for f in request.files
        ]
        files = await self._new_files(tenant, vs_id, specs, "file_ids" if request.file_ids else "files")
        batch = vs_pb2.VectorStoreFileBatch(
            id=ids.new_id("vsfb_"),
            object="vector_store.files_batch",
            created_at=ids.now(),
            vector_store_id=vs_id,
            status=IN_PROGRESS,
        )
        members = [Record(_BATCH_MEMBER, batch.id, f.id, f.id.encode()) for f in files]
        await self.repo.store.put(tenant, members)
        await self.repo.put(tenant, batch, *files)
        self._ingest(tenant, files)
        return vs_pb2.CreateFileBatchResponse(batch=await self._batch(tenant, vs_id, batch.id))

    @unary
    async def GetFileBatch(self, tenant, request, context):
        return vs_pb2.GetFileBatchResponse(batch=await self._batch(tenant, request.vector_store_id, request.batch_id))

    @unary
    async def CancelFileBatch(self, tenant, request, context):
        batch = await self._batch(tenant, request.vector_store_id, request.batch_id)
        if batch.status != IN_PROGRESS:
            raise FailedPrecondition(f"Cannot cancel a batch with status '{enum_name(_FILE_STATUS, batch.status)}'.")
        for f in await self._batch_files(tenant, batch):
            async with self.ingestor.locks[(tenant, f.vector_store_id, f.id)]:
                current = await self.repo.get(tenant, vs_pb2.VectorStoreFile, f.id, f.vector_store_id)
                if current is not None and current.status == IN_PROGRESS:
                    current.status = vs_pb2.VECTOR_STORE_FILE_STATUS_CANCELLED
                    await self.repo.put(tenant, current)
                    await self.repo.store.delete_chunks(tenant, f.vector_store_id, f.id)
        stored = await self.repo.require(tenant, vs_pb2.VectorStoreFileBatch, batch.id, batch.vector_store_id)
        stored.status = vs_pb2.VECTOR_STORE_FILE_STATUS_CANCELLED
        await self.repo.put(tenant, stored)
        return vs_pb2.CancelFileBatchResponse(
            batch=await self._batch(tenant, request.vector_store_id, request.batch_id)
        )

    @unary
    async def ListFileBatchFiles(self, tenant, request, context):
        query = list_query(request)
        batch = await self.repo.require(tenant, vs_pb2.VectorStoreFileBatch, request.batch_id, request.vector_store_id)
        files = [f for f in await self._batch_files(tenant, batch) if not request.filter or f.status == request.filter]
        items, has_more = _paginate(files, query)
        return page(vs_pb2.ListFileBatchFilesResponse(), items, has_more)
