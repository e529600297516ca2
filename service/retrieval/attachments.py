"""Message attachments for file_search: the files go into the thread's vector store, which is
created on first use and set in the thread's tool_resources, as OpenAI does."""

from assistd.v1 import message_pb2, thread_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

from service.repo import Repo
from service.retrieval.stores import new_files, new_vector_store


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
    objects: list = []
    stores = thread.tool_resources.file_search.vector_store_ids
    if stores:
        vs_id = stores[0]
    else:
        store = new_vector_store(name=f"{thread.id} files")
        vs_id = store.id
        stores.append(vs_id)
        objects += [store, thread]
    fresh = [f for f in file_ids if await repo.get(tenant, vs_pb2.VectorStoreFile, f, vs_id) is None]
    files = await new_files(repo, tenant, vs_id, [(f, None, None) for f in fresh], "attachments")
    return objects + files, files
