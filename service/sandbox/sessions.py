"""Sandbox sessions: one box per (tenant, thread), kept while it is used, closed when idle.

A session lives in the process that opened it. A run on another replica (or after a restart)
opens a fresh session there and gets the thread's files again (the engine puts them in on every
run); the Python variables of the old session are not carried over.
"""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.sandbox.base import Box, Execution, Sandbox

log = logging.getLogger(__name__)
DEFAULT_IDLE_SECONDS = 20 * 60


@dataclass
class Session:
    box: Box
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0
    file_ids: set[str] = field(default_factory=set)  # files already put in the work dir


def session_id(tenant: str, thread_id: str) -> str:
    """A work dir name per (tenant, thread) that no tenant or thread id can steer."""
    return hashlib.sha256(f"{tenant}\0{thread_id}".encode()).hexdigest()[:32]


FileSource = Callable[[], Awaitable[bytes]]


class Sessions:
    def __init__(self, sandbox: Sandbox, idle_seconds: float = DEFAULT_IDLE_SECONDS):
        self.sandbox = sandbox
        self.idle_seconds = idle_seconds
        self._sessions: dict[tuple[str, str], Session] = {}
        self._idle: dict[tuple[str, str], float] = {}  # sessions kept idle for another time (containers)
        self._opening = asyncio.Lock()
        self._reaper: asyncio.Task | None = None

    def unavailable(self) -> str | None:
        return self.sandbox.unavailable()

    async def _session(self, tenant: str, thread_id: str) -> Session:
        key = (tenant, thread_id)
        async with self._opening:
            session = self._sessions.get(key)
            if session is None:
                box = await self.sandbox.open(session_id(tenant, thread_id))
                session = self._sessions[key] = Session(box)
                if self._reaper is None or self._reaper.done():
                    self._reaper = asyncio.create_task(self._reap(), name="sandbox idle reaper")
            session.last_used = asyncio.get_running_loop().time()
            return session

    async def put_files(self, tenant: str, thread_id: str, files: dict[str, tuple[str, FileSource]]) -> None:
        """Puts files ({file id: (file name, its content)}) the session does not have yet in its
        work dir, by name."""
        session = await self._session(tenant, thread_id)
        async with session.lock:
            for file_id, (name, content) in files.items():
                if file_id not in session.file_ids:
                    await session.box.write_file(name, await content())
                    session.file_ids.add(file_id)

    def keep_idle(self, tenant: str, key: str, seconds: float) -> None:
        """How long this session is kept idle, instead of the default (a container's expiry)."""
        self._idle[(tenant, key)] = seconds

    async def mark_file(self, tenant: str, key: str, file_id: str) -> None:
        """Notes that the session's work dir has this file already (the code wrote it)."""
        session = self._sessions.get((tenant, key))
        if session is not None:
            session.file_ids.add(file_id)

    async def forget_file(self, tenant: str, key: str, file_id: str) -> None:
        """Notes that the session's copy of this file is stale: put_files writes it again."""
        session = self._sessions.get((tenant, key))
        if session is not None:
            session.file_ids.discard(file_id)

    async def execute(self, tenant: str, thread_id: str, code: str) -> tuple[Execution, Box]:
        """Runs a block in the thread's session (one block at a time per session)."""
        session = await self._session(tenant, thread_id)
        async with session.lock:
            execution = await session.box.execute(code)
            session.last_used = asyncio.get_running_loop().time()
            return execution, session.box

    async def read_file(self, tenant: str, thread_id: str, name: str, max_bytes: int) -> bytes | None:
        """A file of the thread's live session here, or None (no session, no such file)."""
        session = self._sessions.get((tenant, thread_id))
        if session is None:
            return None
        async with session.lock:
            return await session.box.read_file(name, max_bytes)

    async def close(self, tenant: str, thread_id: str) -> None:
        session = self._sessions.pop((tenant, thread_id), None)
        self._idle.pop((tenant, thread_id), None)
        if session is not None:
            async with session.lock:
                await session.box.close()

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for tenant, thread_id in list(self._sessions):
            await self.close(tenant, thread_id)

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while self._sessions:
            shortest = min([self.idle_seconds, *self._idle.values()])
            await asyncio.sleep(max(0.05, min(30.0, shortest / 2)))
            now = loop.time()
            for key, session in list(self._sessions.items()):
                idle = self._idle.get(key, self.idle_seconds)
                if not session.lock.locked() and now - session.last_used > idle:
                    log.info("closing an idle code_interpreter session")
                    try:
                        await self.close(*key)
                    except Exception:
                        log.exception("closing a code_interpreter session failed")
