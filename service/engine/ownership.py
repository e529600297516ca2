"""Which process runs which run, so that several replicas can share one store.

Every active run (a thread's claim in the store) carries an ownership Token: the process that
runs it, a nonce, and whether the run waits for tool outputs. Every take-over is a
compare-and-set from the token seen to a fresh one, so of two processes racing from the same
token only one wins; and a submit, a cancel or an expiry may only take a *waiting* token, so
none of them can take a run that another replica is resuming.

Each process keeps a heartbeat. When one stops (a crash, a lost lease), the others' sweep finds
its runs and ends them; a process whose heartbeat cannot be renewed stops its own runs without
writing more (fencing), since another may take them over any moment.
"""

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from service.store import LogEntry, Store

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5  # how often a replica looks for cancel requests for its runs
_WAITING = "w"


@dataclass(frozen=True)
class Token:
    """Stored as `<owner>/<nonce>`, plus `/w` while the run waits for tool outputs."""

    owner: str
    nonce: str
    waiting: bool = False

    def __str__(self) -> str:
        return f"{self.owner}/{self.nonce}" + (f"/{_WAITING}" if self.waiting else "")

    @classmethod
    def parse(cls, text: str) -> "Token":
        owner, _, rest = text.partition("/")
        nonce, _, flag = rest.partition("/")
        return cls(owner, nonce, flag == _WAITING)


@dataclass(frozen=True)
class Orphan:
    """An active run whose owner stopped."""

    tenant: str
    thread_id: str
    run_id: str
    token: Token


def new_owner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Ownership:
    """The tokens this process holds, and every change of a run's owner."""

    def __init__(self, store: Store, lease_seconds: int, owner: str | None = None):
        self._store = store
        self.lease_seconds = lease_seconds
        self.owner = owner or new_owner_id()
        self._held: dict[str, Token] = {}  # run id -> the token this process holds
        self._writing: set[Token] = set()  # tokens of ours being written: held as soon as the write lands

    def _fresh(self, waiting: bool = False) -> Token:
        return Token(self.owner, uuid.uuid4().hex[:8], waiting)

    async def claim(
        self, tenant: str, thread_id: str, run_id: str, entries: Sequence[LogEntry] | None = None
    ) -> str | None:
        """Makes run_id the thread's active run, owned here. None on success, else the id of the
        run that is active already. With entries, they are committed with the claim, in the
        same round trip (Store.claim_and_commit); if that fails, the claim is not held here, and
        the sweep ends whatever it left."""
        token = self._fresh()
        self._writing.add(token)
        try:
            if entries is None:
                active = await self._store.claim_thread(tenant, thread_id, run_id, str(token))
            else:
                active = await self._store.claim_and_commit(tenant, thread_id, run_id, str(token), entries)
            if active is None:
                self._held[run_id] = token
            return active
        finally:
            self._writing.discard(token)

    async def current(self, tenant: str, thread_id: str, run_id: str) -> Token | None:
        """The token of run_id if it is the thread's active run."""
        found = await self._store.run_owner(tenant, thread_id)
        return Token.parse(found[1]) if found is not None and found[0] == run_id else None

    async def take(self, tenant: str, thread_id: str, run_id: str, seen: Token, waiting: bool = False) -> bool:
        """THE take-over: from the token seen to a fresh one of ours, if nobody changed it since."""
        token = self._fresh(waiting)
        self._writing.add(token)
        try:
            if not await self._store.take_over(tenant, thread_id, run_id, str(token), old_owner=str(seen)):
                return False
            self._held[run_id] = token
            return True
        finally:
            self._writing.discard(token)

    async def take_waiting(self, tenant: str, thread_id: str, run_id: str) -> bool:
        """Takes a run that waits for tool outputs (to resume, cancel or expire it). False when it
        is no longer active, or not waiting: another process is resuming it."""
        seen = await self.current(tenant, thread_id, run_id)
        return seen is not None and seen.waiting and await self.take(tenant, thread_id, run_id, seen)

    async def mark_waiting(self, tenant: str, thread_id: str, run_id: str) -> bool:
        """Swaps our token for a waiting one: a submit may take the run from here on."""
        held = self._held.get(run_id)
        return held is not None and await self.take(tenant, thread_id, run_id, held, waiting=True)

    async def still_ours(self, tenant: str, thread_id: str, run_id: str) -> bool:
        """Whether we still hold the run: false once another replica took it over (our lease lapsed)."""
        held = self._held.get(run_id)
        return held is not None and await self.current(tenant, thread_id, run_id) == held

    def forget(self, run_id: str) -> None:
        self._held.pop(run_id, None)

    async def heartbeat(self) -> None:
        await self._store.heartbeat(self.owner, self.lease_seconds)

    async def orphans(self, running_here: set[str]) -> list[Orphan]:
        """Active runs nobody will end: their owner's heartbeat lapsed (a single-process store: any
        other owner), or they are ours but neither running here nor held (we fenced them, or their
        end could not be written while the store was unreachable)."""
        if self._store.shared:  # only the runs of stopped processes and ours, not every replica's
            alive = await self._store.live_owners() | {self.owner}
            runs = await self._store.runs_to_check(alive, self.owner)
        else:
            alive, runs = {self.owner}, await self._store.active_runs()
        found = []
        for tenant, thread_id, run_id, text in runs:
            token = Token.parse(text)
            dropped = token.owner == self.owner and self._held.get(run_id) != token and token not in self._writing
            if (token.owner not in alive or dropped) and run_id not in running_here:
                found.append(Orphan(tenant, thread_id, run_id, token))
        return found

    async def request_cancel(self, token: Token, tenant: str, thread_id: str, run_id: str) -> None:
        """Asks the process holding the token to cancel a run it runs (its monitor picks it up)."""
        await self._store.request_cancel(token.owner, tenant, thread_id, run_id)


class RunHost(Protocol):
    """What the monitor asks of the engine."""

    def running(self) -> set[str]: ...

    def fence(self) -> None: ...

    async def sweep(self) -> int: ...

    async def cancel_asked(self, tenant: str, thread_id: str, run_id: str) -> None: ...


class Monitor:
    """Keeps the heartbeat; fences this process when it cannot; sweeps orphans every lease/3; and
    on a shared store serves the cancels other replicas pass on for our runs."""

    def __init__(self, ownership: Ownership, store: Store, host: RunHost):
        self._ownership = ownership
        self._store = store
        self._host = host
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self._ownership.heartbeat()
        self._task = asyncio.create_task(self._loop(), name="run-lease-monitor")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        lease = self._ownership.lease_seconds
        tick = min(CANCEL_POLL_SECONDS, lease / 3)
        last_beat = last_sweep = loop.time()
        while True:
            await asyncio.sleep(tick)
            if loop.time() - last_sweep >= lease / 3:
                last_sweep = loop.time()
                try:
                    await self._ownership.heartbeat()
                    last_beat = loop.time()
                except Exception:
                    log.exception("heartbeat failed")
                if self._store.shared and loop.time() - last_beat > lease * 2 / 3 and self._host.running():
                    self._host.fence()
                try:
                    await self._host.sweep()
                except Exception:  # the store is unreachable for now: try again next round
                    log.exception("sweeping runs of stopped owners failed")
            if self._store.shared and self._host.running():
                try:
                    await self._serve_cancel_requests()
                except Exception:
                    log.exception("reading cancel requests failed")

    async def _serve_cancel_requests(self) -> None:
        owner = self._ownership.owner
        for tenant, thread_id, run_id in await self._store.cancel_requests(owner):
            if run_id in self._host.running():
                await self._host.cancel_asked(tenant, thread_id, run_id)
            await self._store.clear_cancel_request(owner, tenant, run_id)
