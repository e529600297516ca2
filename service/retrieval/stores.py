"""Making vector stores and their files, validated as OpenAI validates them. Used by the vector
store API, message attachments and the inline `tool_resources.file_search.vector_stores` helper."""

from assistd.v1 import file_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

from service import ids
from service.errors import InvalidArgument, missing, not_found
from service.repo import Repo
from service.retrieval.chunk import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
from service.validation import check_attributes, check_chunking_strategy, check_metadata


def stored_chunking(
    strategy: vs_pb2.ChunkingStrategyParam | None, param: str = "chunking_strategy"
) -> vs_pb2.ChunkingStrategy:
    """The strategy to store: `auto` (or none) becomes static 800/400; static is validated as OpenAI does."""
    if strategy is None or strategy.WhichOneof("kind") != "static":
        return vs_pb2.ChunkingStrategy(
            static=vs_pb2.StaticChunking(
                max_chunk_size_tokens=DEFAULT_MAX_TOKENS, chunk_overlap_tokens=DEFAULT_OVERLAP
            ),
        )
    check_chunking_strategy(strategy, param)
    return vs_pb2.ChunkingStrategy(static=strategy.static)


def new_vector_store(name: str = "", metadata=None) -> vs_pb2.VectorStore:
    check_metadata(metadata or {})
    now = ids.now()
    return vs_pb2.VectorStore(
        id=ids.new_id("vs_"),
        object="vector_store",
        created_at=now,
        name=name,
        status=vs_pb2.VECTOR_STORE_STATUS_COMPLETED,
        metadata=metadata or {},
        last_active_at=now,
    )


async def new_files(repo: Repo, tenant: str, vs_id: str, specs, param: str) -> list[vs_pb2.VectorStoreFile]:
    """Vector store files for (file_id, chunking strategy or None, attributes or None) specs, all
    validated before any is stored. Raises NotFound for an unknown file."""
    files = []
    for i, (file_id, strategy, attributes) in enumerate(specs):
        if not file_id:
            raise missing(f"{param}[{i}]")
        if await repo.get(tenant, file_pb2.File, file_id) is None:
            raise not_found("file", file_id)
        vs_file = vs_pb2.VectorStoreFile(
            id=file_id,
            object="vector_store.file",
            created_at=ids.now(),
            vector_store_id=vs_id,
            status=vs_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
            chunking_strategy=stored_chunking(strategy),
        )
        if attributes is not None:
            check_attributes(attributes)
            vs_file.attributes.CopyFrom(attributes)
        files.append(vs_file)
    return files


async def inline_stores(repo: Repo, tenant: str, resources, param: str = "tool_resources"):
    """Creates the vector stores that `tool_resources.file_search.vector_stores` asks for: returns
    (objects to store, files to ingest) and puts the new ids in `vector_store_ids`."""
    search = resources.file_search
    if not search.vector_stores:
        return [], []
    if len(search.vector_stores) + len(search.vector_store_ids) > 1:
        raise InvalidArgument(
            "A file_search tool resource holds at most one vector store.", param=f"{param}.file_search.vector_stores"
        )
    objects, to_ingest = [], []
    for i, spec in enumerate(search.vector_stores):
        where = f"{param}.file_search.vector_stores[{i}]"
        store = new_vector_store(metadata=spec.metadata)
        chunking = spec.chunking_strategy if spec.HasField("chunking_strategy") else None
        files = await new_files(
            repo, tenant, store.id, [(f, chunking, None) for f in spec.file_ids], f"{where}.file_ids"
        )
        objects += [store, *files]
        to_ingest += files
        search.vector_store_ids.append(store.id)
    del search.vector_stores[:]
    return objects, to_ingest
