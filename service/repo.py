"""Typed access to the store: protobuf objects in, protobuf objects out."""

from collections.abc import Callable, Sequence
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
from service.store import Key, Listing, ListQuery, Page, Record, Store

T = TypeVar("T", bound=ProtoMessage)
Wanted = tuple[type[ProtoMessage], str, str]  # (class, object id, parent): one object to read
Listed = tuple[type[ProtoMessage], str, Callable[[bytes], ProtoMessage] | None]  # (class, parent, decode)
ALL_PAGE = 500  # objects per store read in Repo.all: a long thread is a few reads, not one per 100

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

    async def require_many(self, tenant: str, *wanted: Wanted) -> list[ProtoMessage]:
        """Several objects read in one store trip; NotFound for the first one missing."""
        found, _ = await self.read(tenant, wanted)
        for (cls, object_id, _), obj in zip(wanted, found, strict=True):
            if obj is None:
                raise not_found(_KINDS[cls][1], object_id)
        return [obj for obj in found if obj is not None]

    async def read(
        self, tenant: str, wanted: Sequence[Wanted], listed: Sequence[Listed] = ()
    ) -> tuple[list[ProtoMessage | None], list[list[ProtoMessage]]]:
        """Objects (None where missing) and every object under parents (as all() reads them), in
        one store trip (more only for a list longer than a page)."""
        keys = [Key(_KINDS[cls][0], parent, object_id) for cls, object_id, parent in wanted]
        first = ListQuery(limit=ALL_PAGE, order="asc")
        found, pages = await self.store.read_many(
            tenant, keys, [Listing(_KINDS[cls][0], parent, first) for cls, parent, _ in listed]
        )
        objects = [
            cls.FromString(data) if data is not None and object_id else None
            for (cls, object_id, _), data in zip(wanted, found, strict=True)
        ]
        lists = [
            await self._rest(tenant, cls, parent, decode or cls.FromString, page)
            for (cls, parent, decode), page in zip(listed, pages, strict=True)
        ]
        return objects, lists

    async def all(self, tenant: str, cls: type[T], parent: str, decode: Callable[[bytes], T] | None = None) -> list[T]:
        """Every object under parent, oldest first, read in pages of ALL_PAGE; decode (e.g. a memo)
        turns stored bytes into objects instead of cls.FromString."""
        return await self._rest(tenant, cls, parent, decode or cls.FromString, None)

    async def _rest(
        self, tenant: str, cls: type[T], parent: str, decode: Callable[[bytes], T], page: Page | None
    ) -> list[T]:
        """all() from its first page, if read already."""
        objs: list[T] = []
        while True:
            if page is None:
                after = objs[-1].id if objs else ""  # type: ignore[attr-defined]  # every stored kind has an id field
                query = ListQuery(limit=ALL_PAGE, order="asc", after=after)
                page = await self.store.list_page(tenant, _KINDS[cls][0], parent, query)
            objs.extend(decode(item) for item in page.items)
            if not page.has_more or not page.items:
                return objs
            page = None
