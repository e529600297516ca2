"""A run's event stream: emitting, sequence numbers, the persisted log, and live fan-out.

Every event is committed to the store before any subscriber sees it. Commits are grouped:
while one batch is being written, new events queue up and go together in the next one,
so a token never waits for more than one commit in flight.

Under backlog (COALESCE_BACKLOG entries queued), a text delta that follows a queued text delta
of the same message part is merged into it (service/engine/coalesce.py) instead of becoming an
event of its own. The merge happens before the event is committed or published, so no reader
(a live follower, a resume with Last-Event-ID, WatchRun after_sequence, the stored log) ever
sees the number of an event that was merged away: the sequence stays gap-free and ordered.
Subscribers that fall behind are not coalesced (their events are numbered and logged
already); they catch up from the log in bulk instead (RunChannel.follow, FellBehind).
"""

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from assistd.v1 import message_pb2, run_pb2, thread_pb2
from google.protobuf.message import Message as ProtoMessage

from service.engine.coalesce import append_text
from service.engine.lifecycle import SNAPSHOT, Effect
from service.repo import record
from service.store import LogEntry, Record, Store

log = logging.getLogger(__name__)

DONE = run_pb2.RUN_EVENT_TYPE_DONE
MESSAGE_DELTA = run_pb2.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA
# Entries per commit at most: a writer that fell behind catches up in bounded steps, so no single
# commit (or the wait of the events behind it) grows with the backlog.
MAX_COMMIT = 256
# Queued entries (all runs) from which consecutive text deltas of a message are merged: far more
# than one run's ordinary burst, so a stream only changes shape when the writer really lags.
COALESCE_BACKLOG = 128
# The RunEvent field that carries each kind of object.
_PAYLOAD_FIELD: dict[type, str] = {
    thread_pb2.Thread: "thread",
    run_pb2.Run: "run",
    run_pb2.RunStep: "run_step",
    message_pb2.Message: "message",
    run_pb2.RunStepDeltaEvent: "run_step_delta",
    message_pb2.MessageDeltaEvent: "message_delta",
}
# Payload fields whose objects are stored as snapshots together with the event.
_SNAPSHOT_FIELDS = ("thread", "run", "run_step", "message")


class FellBehind(Exception):
    """A follower's next event has left the channel's window: read it from the log."""


class RunChannel:
    """The live events of one run segment in this process, from `first_sequence` on.

    It keeps the last WINDOW committed events, so its memory is bounded however long the run;
    a follower that falls further behind gets FellBehind and catches up from the log.
    """

    WINDOW = 1024

    def __init__(self, tenant: str, thread_id: str, run_id: str, first_sequence: int = 1):
        self.tenant = tenant
        self.thread_id = thread_id
        self.run_id = run_id
        self.first_sequence = first_sequence
        self.next_sequence = first_sequence  # the number the next emitted event gets
        self._kept: deque[run_pb2.RunEvent] = deque()  # the last committed events, in order
        self._first_kept = first_sequence  # the sequence number of _kept[0]
        self.closed = False
        self._waiters: list[asyncio.Future] = []

    @property
    def last_committed(self) -> int:
        return self._first_kept + len(self._kept) - 1

    def number(self, event: run_pb2.RunEvent) -> int:
        """Gives the event the run's next sequence number, and returns it."""
        event.sequence_number = self.next_sequence
        self.next_sequence += 1
        return event.sequence_number

    def publish(self, event: run_pb2.RunEvent) -> None:
        self._kept.append(event)
        if len(self._kept) > self.WINDOW:
            self._kept.popleft()
            self._first_kept += 1
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def committed(self, sequence: int) -> None:
        """Returns once the event with this sequence number is in the store (or the channel closed)."""
        while self.last_committed < sequence and not self.closed:
            await self._changed()

    async def follow(self, after_sequence: int) -> AsyncIterator[run_pb2.RunEvent]:
        """Committed events after after_sequence, live, up to and including the next `done`.
        Raises FellBehind when the next one is no longer kept."""
        wanted = max(after_sequence + 1, self.first_sequence)
        while True:
            while wanted <= self.last_committed:
                if wanted < self._first_kept:
                    raise FellBehind()
                event = self._kept[wanted - self._first_kept]
                wanted += 1
                yield event
                if event.event == DONE:
                    return
            if self.closed:
                return
            await self._changed()


def _event(event_type: run_pb2.RunEventType, obj: ProtoMessage | None) -> run_pb2.RunEvent:
    """An event carrying a copy of obj (None: no payload)."""
    event = run_pb2.RunEvent(event=event_type)
    if obj is not None:
        getattr(event, _PAYLOAD_FIELD[type(obj)]).CopyFrom(obj)
    return event


def _seal(event: run_pb2.RunEvent, entry: LogEntry) -> None:
    """Fills a queued event's log entry: its bytes and the snapshot of the object it carries."""
    entry.data = event.SerializeToString()
    payload = event.WhichOneof("data")
    if payload in _SNAPSHOT_FIELDS:
        entry.records = [record(getattr(event, payload))]


class EventLog:
    """Assigns sequence numbers, group-commits events with their snapshots, then publishes."""

    def __init__(self, store: Store):
        self._store = store
        self._queue: asyncio.Queue[tuple[RunChannel, run_pb2.RunEvent | asyncio.Future, LogEntry]] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        # Each channel's last queued event while the writer has not taken it: what a text delta
        # may be merged into.
        self._tails: dict[RunChannel, run_pb2.RunEvent] = {}

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="event-log-writer")

    async def stop(self) -> None:
        """Writes what is queued, then stops."""
        await self._queue.join()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    def emit(self, channel: RunChannel, event_type: run_pb2.RunEventType, obj: ProtoMessage | None = None) -> int:
        """Queues an event carrying (a copy of) obj; returns its sequence number. An event that
        carries a run, step, message or thread also stores that object as it is now. SNAPSHOT
        stores the object with no event (and returns the last event's number)."""
        if event_type == SNAPSHOT:
            self.snapshot(channel, obj)
            return channel.next_sequence - 1
        if isinstance(obj, message_pb2.MessageDeltaEvent) and self._queue.qsize() >= COALESCE_BACKLOG:
            tail = self._tails.get(channel)
            if tail is not None and tail.event == MESSAGE_DELTA and append_text(tail.message_delta, obj):
                return tail.sequence_number
        return self._append(channel, _event(event_type, obj))

    def apply(self, channel: RunChannel, effects: Iterable[Effect]) -> int:
        """Writes effects in order (events, or object writes for SNAPSHOT); returns the last
        event's sequence number."""
        sequence = channel.next_sequence - 1
        for effect in effects:
            sequence = self.emit(channel, *effect)
        return sequence

    def first_entries(
        self, channel: RunChannel, effects: Iterable[Effect], records: Iterable[Record] = ()
    ) -> tuple[list[LogEntry], list[run_pb2.RunEvent]]:
        """A new run's first events (effects), numbered and sealed for a commit the caller makes
        itself, together with the run's claim (Store.claim_and_commit); `records` (the thread and
        messages the run brings) go in the same commit. Once it is written, publish the events
        with `committed_first`. Nothing else may be emitted on the channel before that."""
        records = list(records)
        entries = [LogEntry(channel.tenant, channel.run_id, 0, b"", records)] if records else []
        events = []
        for event_type, obj in effects:
            assert event_type != SNAPSHOT, "a first commit carries events"
            event = _event(event_type, obj)
            entry = LogEntry(channel.tenant, channel.run_id, channel.number(event), b"")
            _seal(event, entry)
            entries.append(entry)
            events.append(event)
        return entries, events

    @staticmethod
    def committed_first(channel: RunChannel, events: Iterable[run_pb2.RunEvent]) -> None:
        """Publishes the events of first_entries, once their commit is written."""
        for event in events:
            channel.publish(event)

    def done(self, channel: RunChannel, release_thread: bool) -> int:
        """Ends the stream segment with `done`; with release_thread, the same commit frees the
        thread for a new run (the run has ended)."""
        return self._append(channel, run_pb2.RunEvent(event=DONE), release_thread)

    def _append(self, channel: RunChannel, event: run_pb2.RunEvent, release_thread: bool = False) -> int:
        """Numbers the event and queues it for commit; returns its sequence number. With
        release_thread, the commit also frees the thread's claim (the run has ended)."""
        channel.number(event)
        # data and records are filled in when the writer takes the entry (a delta may still grow)
        entry = LogEntry(
            channel.tenant,
            channel.run_id,
            event.sequence_number,
            b"",
            release_thread=channel.thread_id if release_thread else "",
        )
        self._queue.put_nowait((channel, event, entry))
        self._tails[channel] = event
        return event.sequence_number

    def snapshot(self, channel: RunChannel, obj) -> asyncio.Future:
        """Queues an object write behind the run's queued events, so none of them overwrites it.
        The returned future is done once it is committed."""
        entry = LogEntry(channel.tenant, channel.run_id, 0, b"", [record(obj)])
        written = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((channel, written, entry))
        self._tails.pop(channel, None)  # no delta merges across an object write
        return written

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_COMMIT:
                batch.append(self._queue.get_nowait())
            for channel, event, entry in batch:
                if isinstance(event, run_pb2.RunEvent):
                    if self._tails.get(channel) is event:
                        del self._tails[channel]  # taken: it no longer changes
                    _seal(event, entry)
            try:
                committed = await self._commit([entry for _, _, entry in batch])
                for channel, event, _ in batch:
                    if isinstance(event, asyncio.Future):  # a snapshot: tell its writer
                        if not event.done():
                            event.set_result(committed)
                    elif not committed:
                        channel.close()  # its followers end; what is in the store stays the truth
                    else:
                        channel.publish(event)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, entries: list[LogEntry]) -> bool:
        for attempt in range(5):
            try:
                await self._store.commit(entries)
                return True
            except Exception:
                log.exception("event log commit failed (attempt %d)", attempt + 1)
                await asyncio.sleep(0.05 * 2**attempt)
        log.error("could not store %d run events; their streams are closed", len(entries))
        return False

    async def follow(
        self,
        tenant: str,
        run_id: str,
        after: int,
        channel: Callable[[], RunChannel | None],
        ended: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[run_pb2.RunEvent]:
        """A run's events after `after`, up to and including the next `done`: live from its channel
        (`channel()`, while this process runs it) as long as the follower keeps up, else from the log.
        `ended()` says whether a run with no channel here will write no more."""
        while True:
            live = channel()
            if live is not None and after + 1 >= live.first_sequence:
                try:
                    async for event in live.follow(after):
                        yield event
                        after = event.sequence_number
                    return
                except FellBehind:
                    pass  # read what it missed from the log, then rejoin the channel
            stored = await self._store.read_events(tenant, run_id, after)
            for _, data in stored:
                event = run_pb2.RunEvent.FromString(data)
                yield event
                after = event.sequence_number
                if event.event == DONE:
                    return
            if not stored and channel() is None:
                if await ended():
                    return  # nothing more will come
                # The next segment (after tool outputs) or another process will write more.
                await asyncio.sleep(0.1)
