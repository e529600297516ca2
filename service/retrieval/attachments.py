"""Message attachments for file_search: the files go into the thread's vector store, which is
created on first use and set in the thread's tool_resources, as OpenAI does."""

from assistd.v1 import file_pb2, message_pb2, thread_pb2, vector_store_pb2 as vs_pb2

from service import ids
from service.errors import not_found
from service.repo import Repo
from service.retrieval.chunk import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP


def _searched_files(messages: list[message_pb2.Message]) -> list[str]:
    files = []
    for message in messages:
        for attachment in message.attachments:
            if any(tool.WhichOneof("kind") == "file_search" for tool in attachment.tools):
                files.append(attachment.file_id)
    return list(dict.fromkeys(files))


async def attach(repo: Repo, tenant: str, thread: thread_pb2.Thread, messages: list[message_pb2.Message]):
    """The objects to store with the messages so that their file_search attachments are searchable
    (the thread's vector store, its new files, the thread itself when it got a store), and the files
    to ingest. Raises NotFound for an unknown file. Stores nothing itself."""
    file_ids = _searched_files(messages)
    if not file_ids:
        return [], []
    for file_id in file_ids:
        if await repo.get(tenant, file_pb2.File, file_id) is None:
            raise not_found("file", file_id)
    objects: list = []
    stores = thread.tool_resources.file_search.vector_store_ids
    if stores:
        vs_id = stores[0]
    else:
        vs_id = ids.new_id("vs_")
        objects.append(
            vs_pb2.VectorStore(
                id=vs_id, object="vector_store", created_at=ids.now(), name=f"{thread.id} files", status="completed",
                last_active_at=ids.now(),
            )
        )
        stores.append(vs_id)
        objects.append(thread)
    new_files = []
    for file_id in file_ids:
        if await repo.get(tenant, vs_pb2.VectorStoreFile, file_id, vs_id) is not None:
            continue
        vs_file = vs_pb2.VectorStoreFile(
            id=file_id, object="vector_store.file", created_at=ids.now(), vector_store_id=vs_id, status="in_progress"
        )
        vs_file.chunking_strategy.type = "static"
        vs_file.chunking_strategy.static.max_chunk_size_tokens = DEFAULT_MAX_TOKENS
        vs_file.chunking_strategy.static.chunk_overlap_tokens = DEFAULT_OVERLAP
        new_files.append(vs_file)
    return objects + new_files, new_files
