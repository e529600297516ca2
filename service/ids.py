"""OpenAI-style ids with a time-ordered part, so sorting ids sorts by creation time.

An id is `<prefix><11 chars of time><13 random chars>`, in base62 with the alphabet in
ASCII order, so plain string comparison (SQLite, Cassandra clustering) follows creation.
"""

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TIME_WIDTH = 11  # 62**11 > 2**64
_RANDOM_WIDTH = 13
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
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_WIDTH))
    return f"{prefix}{_base62(stamp, _TIME_WIDTH)}{random_part}"


def now() -> int:
    """Unix time in seconds, as OpenAI's `created_at` fields use."""
    return int(time.time())
