"""Typed access to the store: protobuf objects in, protobuf objects out."""

from typing import TypeVar

from assistd.v1 import (
    assistant_pb2,
    container_pb2,
    file_pb2,
    message_pb2,
    response_pb2,
    run_pb2,
    thread_pb2,
    vector_store_pb2,
)
from google.protobuf.message import Message as ProtoMessage

from service.errors import not_found
from service.protojson import enum_name
from service.store import ListQuery, Record, Store

T = TypeVar("T", bound=ProtoMessage)

# proto type -> (store kind, what the error calls it, parent of an object, secondary tag)
_KINDS = {
    assistant_pb2.Assistant: ("assistant", "assistant", lambda o: "", lambda o: ""),
    thread_pb2.Thread: ("thread", "thread", lambda o: "", lambda o: ""),
    message_pb2.Message: ("message", "message", lambda o: o.thread_id, lambda o: o.run_id),
    run_pb2.Run: ("run", "run", lambda o: o.thread_id, lambda o: ""),
    run_pb2.RunStep: ("step", "run step", lambda o: o.run_id, lambda o: ""),
    file_pb2.File: (
        "file",
        "file",
        lambda o: "",
        lambda o: enum_name(file_pb2.FilePurpose.DESCRIPTOR, o.purpose) or "",
    ),
    vector_store_pb2.VectorStore: ("vector_store", "vector store", lambda o: "", lambda o: ""),
    vector_store_pb2.VectorStoreFile: (
        "vs_file",
        "vector store file",
        lambda o: o.vector_store_id,
        lambda o: enum_name(vector_store_pb2.VectorStoreFileStatus.DESCRIPTOR, o.status) or "",
    ),
    vector_store_pb2.VectorStoreFileBatch: ("vs_batch", "file batch", lambda o: o.vector_store_id, lambda o: ""),
    response_pb2.StoredResponse: ("response", "response", lambda o: "", lambda o: ""),
    container_pb2.Container: ("container", "container", lambda o: "", lambda o: o.name),
    container_pb2.ContainerFile: ("container_file", "container file", lambda o: o.container_id, lambda o: ""),
    container_pb2.RunContainer: ("run_container", "run container", lambda o: "", lambda o: ""),
}


def kind_of(cls: type) -> str:
    return _KINDS[cls][0]


def record(obj: ProtoMessage) -> Record:
    kind, _, parent, tag = _KINDS[type(obj)]
    object_id = obj.id  # type: ignore[attr-defined]  # every stored kind has an id field
    return Record(kind=kind, parent=parent(obj), id=object_id, data=obj.SerializeToString(), tag=tag(obj))


class Repo:
    def __init__(self, store: Store):
        self.store = store

    async def get(self, tenant: str, cls: type[T], object_id: str, parent: str = "") -> T | None:
        data = await self.store.get(tenant, _KINDS[cls][0], parent, object_id) if object_id else None
        return cls.FromString(data) if data is not None else None

    async def require(self, tenant: str, cls: type[T], object_id: str, parent: str = "") -> T:
        """The object, or NotFound in OpenAI's words."""
        obj = await self.get(tenant, cls, object_id, parent)
        if obj is None:
            raise not_found(_KINDS[cls][1], object_id)
        return obj

    async def put(self, tenant: str, *objs: ProtoMessage) -> None:
        await self.store.put(tenant, [record(obj) for obj in objs])

    async def delete(self, tenant: str, cls: type, object_id: str, parent: str = "") -> bool:
        return await self.store.delete(tenant, _KINDS[cls][0], parent, object_id)

    async def list_page(
        self, tenant: str, cls: type[T], parent: str, query: ListQuery, tag: str = ""
    ) -> tuple[list[T], bool]:
        page = await self.store.list_page(tenant, _KINDS[cls][0], parent, query, tag)
        return [cls.FromString(item) for item in page.items], page.has_more

    async def all(self, tenant: str, cls: type[T], parent: str) -> list[T]:
        """Every object under parent, oldest first."""
        objs: list[T] = []
        after = ""
        while True:
            page, has_more = await self.list_page(tenant, cls, parent, ListQuery(limit=100, order="asc", after=after))
            objs.extend(page)
            if not has_more or not page:
                return objs
            after = page[-1].id  # type: ignore[attr-defined]  # every stored kind has an id field
