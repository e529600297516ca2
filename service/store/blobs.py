"""File bytes. The embedded default keeps them on local disk beside the SQLite file; file IO
runs in worker threads, never on the event loop."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 1024 * 1024


class BlobStore(Protocol):
    async def write(self, tenant: str, blob_id: str, chunks: AsyncIterator[bytes]) -> int:
        """Stores the chunks as one blob, all or nothing; returns its size. If `chunks` raises,
        nothing is kept and the error propagates."""

    def read(self, tenant: str, blob_id: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most CHUNK_SIZE; FileNotFoundError if it is missing."""

    async def delete(self, tenant: str, blob_id: str) -> None: ...


class LocalBlobs:
    def __init__(self, root: str):
        self._root = Path(root)

    def _path(self, tenant: str, blob_id: str) -> Path:
        # Tenants are API-key-derived strings: hash them rather than trust them as paths.
        tenant_dir = hashlib.sha256(tenant.encode()).hexdigest()[:24]
        if not blob_id or "/" in blob_id or blob_id.startswith("."):
            raise FileNotFoundError(blob_id)
        return self._root / tenant_dir / blob_id

    async def write(self, tenant: str, blob_id: str, chunks: AsyncIterator[bytes]) -> int:
        path = self._path(tenant, blob_id)
        partial = path.with_name(path.name + ".partial")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        handle = None
        size = 0
        try:
            handle = await asyncio.to_thread(open, partial, "wb")
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, partial, path)
        except BaseException:

            def discard() -> None:
                if handle is not None:
                    handle.close()
                partial.unlink(missing_ok=True)

            # Shielded: a cancelled upload (the client left) cancelled again must still not leave
            # a .partial behind.
            await asyncio.shield(asyncio.to_thread(discard))
            raise
        return size

    async def read(self, tenant: str, blob_id: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self._path(tenant, blob_id), "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, tenant: str, blob_id: str) -> None:
        await asyncio.to_thread(self._path(tenant, blob_id).unlink, missing_ok=True)
