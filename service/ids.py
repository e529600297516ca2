"""OpenAI-style ids with a time-ordered part, so sorting ids sorts by creation time.

An id is `<prefix><11 chars of time><13 random chars>`, in base62 with the alphabet in
ASCII order, so plain string comparison (SQLite, Cassandra clustering) follows creation.
"""

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = frozenset(_ALPHABET)
_TIME_WIDTH = 11  # 62**11 > 2**64
_RANDOM_WIDTH = 13
_RANDOM_SPACE = 62**_RANDOM_WIDTH
_COUNTER_BITS = 20  # ids minted within one millisecond keep their order

_lock = threading.Lock()
_last = 0


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as `msg_0Ab3...`; later calls in this process always sort after."""
    global _last
    with _lock:
        stamp = max(time.time_ns() // 1_000_000 << _COUNTER_BITS, _last + 1)
        _last = stamp
    return _id(prefix, stamp)


def id_at(prefix: str, millis: int, counter: int = 0) -> str:
    """An id as new_id would have minted it at Unix time `millis` (ms): for tests and tools."""
    return _id(prefix, (millis << _COUNTER_BITS) + counter)


def _id(prefix: str, stamp: int) -> str:
    # one draw from the OS for all 13 characters (secrets.choice per character was 13 syscalls)
    random_part = _base62(secrets.randbelow(_RANDOM_SPACE), _RANDOM_WIDTH)
    return f"{prefix}{_base62(stamp, _TIME_WIDTH)}{random_part}"


def time_prefix(object_id: str, time_chars: int) -> str | None:
    """The id's prefix and the first time_chars characters of its time: equal for the ids of one
    prefix minted in one period of 62**(11 - time_chars) / 2**20 ms, and sorting as those ids do.
    None for an id of another shape (not minted here)."""
    tail = _TIME_WIDTH + _RANDOM_WIDTH
    if len(object_id) < tail or not set(object_id[-tail:]) <= _DIGITS:
        return None
    return object_id[: len(object_id) - tail + time_chars]


def now() -> int:
    """Unix time in seconds, as OpenAI's `created_at` fields use."""
    return int(time.time())
