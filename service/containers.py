"""Containers: a code_interpreter sandbox session (keyed by tenant and container id) with its
files, as OpenAI's Containers API and the Responses API's code_interpreter tool see them.

A container's record and its files (records, and their bytes in the blob store) live in the
store, so any replica can list and serve them; its live Python session lives in the process
that last ran code in it. Files are put into the session by name before code runs; what the
code writes or changes in /mnt/data is read back after each block and kept as the container's
files (source "assistant"). A container unused for `expires_after.minutes` is expired: its
files are deleted and its session closed (that check runs when the container is read, and the
session's own idle reaper closes it too).

The `auto` container of the Responses API is one per thread: a response chain (on one thread)
and a conversation (a thread) share it. Its id is derived from the thread's id, so every
response of the thread finds it without a lookup; once expired, the next response revives it,
empty but for that response's files.
"""

import logging
from collections.abc import AsyncIterator

from assistd.v1 import container_pb2, file_pb2

from service import ids
from service.errors import FailedPrecondition, FileTooLarge, InvalidArgument, NotFound
from service.repo import Repo
from service.sandbox import Box, Execution, Sessions
from service.store import ListQuery
from service.store.blobs import BlobStore

log = logging.getLogger(__name__)
C = container_pb2
DEFAULT_MINUTES = 20
MAX_MINUTES = 20
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
WORKDIR = "/mnt/data/"
MAX_FILES = 100  # files copied into one container from file ids at once
MAX_COLLECTED_BYTES = 64 * 1024 * 1024  # a file the code wrote larger than this is not kept


def auto_container_id(thread_id: str) -> str:
    """The id of a thread's auto container."""
    return "cntr_" + thread_id.removeprefix("thread_")


def _name_of(container_file: container_pb2.ContainerFile) -> str:
    return container_file.path.removeprefix(WORKDIR)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Containers:
    def __init__(self, repo: Repo, blobs: BlobStore, sessions: Sessions, minute_seconds: float = 60.0):
        self.repo = repo
        self.blobs = blobs
        self.sessions = sessions
        self.minute_seconds = minute_seconds  # how long a minute of expires_after lasts (tests shorten it)

    def _idle_seconds(self, container: container_pb2.Container) -> float:
        return container.expires_after.minutes * self.minute_seconds

    # ---- containers --------------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        name: str,
        minutes: int | None = None,
        file_ids: list[str] | None = None,
        memory_limit: str | None = None,
        container_id: str | None = None,
    ) -> container_pb2.Container:
        if minutes is not None and not 1 <= minutes <= MAX_MINUTES:
            raise InvalidArgument(
                f"Invalid 'expires_after.minutes': expected a value between 1 and {MAX_MINUTES}.",
                param="expires_after.minutes",
                code="invalid_value",
            )
        if memory_limit is not None and memory_limit not in MEMORY_LIMITS:
            raise InvalidArgument(
                f"Invalid value: '{memory_limit}'. Supported values are: {', '.join(repr(v) for v in MEMORY_LIMITS)}.",
                param="memory_limit",
                code="invalid_value",
            )
        sources = await self._sources(tenant, file_ids or [], "file_ids")
        now = ids.now()
        container = C.Container(
            id=container_id or ids.new_id("cntr_"),
            object="container",
            created_at=now,
            name=name,
            status=C.CONTAINER_STATUS_RUNNING,
            last_active_at=now,
            memory_limit=memory_limit or "1g",
        )
        container.expires_after.anchor = C.CONTAINER_EXPIRY_ANCHOR_LAST_ACTIVE_AT
        container.expires_after.minutes = minutes or DEFAULT_MINUTES
        await self.repo.put(tenant, container)
        for file in sources:
            await self._copy(tenant, container, file)
        return container

    async def _sources(self, tenant: str, file_ids: list[str], param: str) -> list[file_pb2.File]:
        """The uploaded files to copy in, checked before anything is made."""
        if len(file_ids) > MAX_FILES:
            raise InvalidArgument(f"Invalid '{param}': at most {MAX_FILES} files.", param=param)
        files = []
        for i, file_id in enumerate(dict.fromkeys(file_ids)):
            file = await self.repo.get(tenant, file_pb2.File, file_id)
            if file is None:
                raise NotFound(f"No file found with id '{file_id}'.", param=f"{param}[{i}]")
            files.append(file)
        return files

    async def get(self, tenant: str, container_id: str) -> container_pb2.Container:
        """The container (expired now if its time has come); NotFound for another tenant's."""
        container = await self.repo.get(tenant, C.Container, container_id)
        if container is None:
            raise NotFound(f"Container with id '{container_id}' not found.", param="container_id")
        if container.status == C.CONTAINER_STATUS_RUNNING and self._idle(container):
            await self._expire(tenant, container)
        return container

    def _idle(self, container: container_pb2.Container) -> bool:
        return ids.now() - container.last_active_at >= self._idle_seconds(container)

    async def running(self, tenant: str, container_id: str) -> container_pb2.Container:
        """The container, refused when it has expired."""
        container = await self.get(tenant, container_id)
        if container.status == C.CONTAINER_STATUS_EXPIRED:
            raise FailedPrecondition(
                f"Container '{container_id}' has expired; create a new one.", param="container_id", code="expired"
            )
        return container

    async def list_page(
        self, tenant: str, query: ListQuery, name: str = ""
    ) -> tuple[list[container_pb2.Container], bool]:
        items, has_more = await self.repo.list_page(tenant, C.Container, "", query, name)
        for container in items:
            if container.status == C.CONTAINER_STATUS_RUNNING and self._idle(container):
                await self._expire(tenant, container)
        return items, has_more

    async def delete(self, tenant: str, container_id: str) -> None:
        container = await self.get(tenant, container_id)
        await self._discard(tenant, container)
        await self.repo.delete(tenant, C.Container, container_id)

    async def _expire(self, tenant: str, container: container_pb2.Container) -> None:
        log.info("container %s expired", container.id)
        await self._discard(tenant, container)
        container.status = C.CONTAINER_STATUS_EXPIRED
        await self.repo.put(tenant, container)

    async def _discard(self, tenant: str, container: container_pb2.Container) -> None:
        """Ends the container's session here and deletes its files."""
        await self.sessions.close(tenant, container.id)
        for container_file in await self.repo.all(tenant, C.ContainerFile, container.id):
            await self.repo.delete(tenant, C.ContainerFile, container_file.id, container.id)
            await self.blobs.delete(tenant, container_file.id)

    async def touch(self, tenant: str, container: container_pb2.Container) -> None:
        container.last_active_at = ids.now()
        await self.repo.put(tenant, container)

    # ---- files -------------------------------------------------------------------------

    async def upload(
        self, tenant: str, container_id: str, filename: str, chunks: AsyncIterator[bytes]
    ) -> container_pb2.ContainerFile:
        container = await self.running(tenant, container_id)
        name = filename.rsplit("/", 1)[-1].strip()
        if name in ("", ".", ".."):
            raise InvalidArgument("Invalid 'file': the file needs a name.", param="file", code="invalid_value")
        container_file = await self._store(tenant, container, name, chunks, "user")
        await self.touch(tenant, container)
        return container_file

    async def copy(self, tenant: str, container_id: str, file_id: str) -> container_pb2.ContainerFile:
        container = await self.running(tenant, container_id)
        (file,) = await self._sources(tenant, [file_id], "file_id")
        container_file = await self._copy(tenant, container, file)
        await self.touch(tenant, container)
        return container_file

    async def _copy(
        self, tenant: str, container: container_pb2.Container, file: file_pb2.File
    ) -> container_pb2.ContainerFile:
        name = file.filename.rsplit("/", 1)[-1].strip() or file.id
        return await self._store(tenant, container, name, self.blobs.read(tenant, file.id), "user")

    async def _store(
        self, tenant: str, container: container_pb2.Container, name: str, chunks: AsyncIterator[bytes], source: str
    ) -> container_pb2.ContainerFile:
        """Keeps a file under its path: a file already at that path is replaced (same id)."""
        existing = await self.file_at(tenant, container.id, WORKDIR + name)
        container_file = existing or C.ContainerFile(
            id=ids.new_id("cfile_"),
            object="container.file",
            created_at=ids.now(),
            container_id=container.id,
            path=WORKDIR + name,
            source=source,
        )
        container_file.bytes = await self.blobs.write(tenant, container_file.id, chunks)
        await self.repo.put(tenant, container_file)
        if existing is not None:  # the session's copy is stale: put the new bytes in next time
            await self.sessions.forget_file(tenant, container.id, container_file.id)
        return container_file

    async def file_at(self, tenant: str, container_id: str, path: str) -> container_pb2.ContainerFile | None:
        for container_file in await self.repo.all(tenant, C.ContainerFile, container_id):
            if container_file.path == path:
                return container_file
        return None

    async def file(self, tenant: str, container_id: str, file_id: str) -> container_pb2.ContainerFile:
        await self.get(tenant, container_id)
        container_file = await self.repo.get(tenant, C.ContainerFile, file_id, container_id)
        if container_file is None:
            raise NotFound(f"Container file with id '{file_id}' not found.", param="file_id")
        return container_file

    async def files(
        self, tenant: str, container_id: str, query: ListQuery
    ) -> tuple[list[container_pb2.ContainerFile], bool]:
        await self.get(tenant, container_id)
        return await self.repo.list_page(tenant, C.ContainerFile, container_id, query)

    async def delete_file(self, tenant: str, container_id: str, file_id: str) -> None:
        await self.file(tenant, container_id, file_id)
        await self.repo.delete(tenant, C.ContainerFile, file_id, container_id)
        await self.blobs.delete(tenant, file_id)

    def content(self, tenant: str, file_id: str) -> AsyncIterator[bytes]:
        return self.blobs.read(tenant, file_id)

    # ---- for the Responses API and the engine -------------------------------------------

    async def for_response(self, tenant: str, thread_id: str, spec: str | dict) -> str:
        """The container a response's code_interpreter uses: the one it names, or its thread's
        auto container (made, or revived, now) with the files it lists copied in."""
        if isinstance(spec, str):
            return (await self.running(tenant, spec)).id
        file_ids = list(spec.get("file_ids") or [])
        container_id = auto_container_id(thread_id)
        container = await self.repo.get(tenant, C.Container, container_id)
        if container is not None:
            container = await self.get(tenant, container_id)
        if container is None or container.status == C.CONTAINER_STATUS_EXPIRED:
            return (
                await self.create(
                    tenant, "auto", file_ids=file_ids, memory_limit=spec.get("memory_limit"), container_id=container_id
                )
            ).id
        for file in await self._sources(tenant, file_ids, "tools.container.file_ids"):
            name = file.filename.rsplit("/", 1)[-1].strip() or file.id
            if await self.file_at(tenant, container_id, WORKDIR + name) is None:
                await self._copy(tenant, container, file)
        await self.touch(tenant, container)
        return container_id

    async def bind(self, tenant: str, run_id: str, container_id: str) -> None:
        await self.repo.put(tenant, C.RunContainer(id=run_id, container_id=container_id))

    async def of_run(self, tenant: str, run_id: str) -> str | None:
        """The container a run's code runs in, if it is a response's run."""
        binding = await self.repo.get(tenant, C.RunContainer, run_id)
        return binding.container_id if binding is not None else None

    async def load(self, tenant: str, container_id: str) -> None:
        """Puts the container's files the session does not have yet in it, and keeps it alive."""
        container = await self.running(tenant, container_id)
        self.sessions.keep_idle(tenant, container_id, self._idle_seconds(container))
        files = {
            container_file.id: (_name_of(container_file), self._reader(tenant, container_file.id))
            for container_file in await self.repo.all(tenant, C.ContainerFile, container_id)
        }
        await self.sessions.put_files(tenant, container_id, files)
        await self.touch(tenant, container)

    def _reader(self, tenant: str, file_id: str):
        async def read() -> bytes:
            return b"".join([chunk async for chunk in self.blobs.read(tenant, file_id)])

        return read

    async def collect(
        self, tenant: str, container_id: str, box: Box | None, execution: Execution, prefix: str
    ) -> list[str]:
        """Keeps what a block left: the files it wrote (source "assistant") and the figures it
        left open (saved as PNG files in the work dir). Returns the ids of its images."""
        container = await self.repo.get(tenant, C.Container, container_id)
        if container is None or box is None:
            return []

        async def keep(name: str, data: bytes) -> str:
            stored = await self._store(tenant, container, name, _one(data), "assistant")
            await self.sessions.mark_file(tenant, container_id, stored.id)  # the session has it already
            return stored.id

        images = []
        for number, figure in enumerate(execution.images):
            name = f"{prefix}-{number}.png"
            await box.write_file(name, figure)
            images.append(await keep(name, figure))
        for name in execution.files:
            written = await box.read_file(name, MAX_COLLECTED_BYTES)
            if written is None:
                continue
            file_id = await keep(name, written)
            if name.lower().endswith(".png") and written.startswith(b"\x89PNG"):
                images.append(file_id)
        await self.touch(tenant, container)
        return images


def too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(f"File is too large: the limit is {limit} bytes.", param="file", code="file_too_large")
