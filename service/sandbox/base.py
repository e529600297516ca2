"""The sandbox port: a Box is one session's isolated Python (its files and its live interpreter);
a Sandbox makes boxes. bubblewrap.py is the backend; another (a container runtime, a remote
executor) implements the same two protocols."""

import os
from dataclasses import dataclass, field
from typing import Protocol


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Limits:
    """What one code block, and one session, may use. ASSISTD_SANDBOX_* overrides each."""

    cpu_seconds: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_CPU_SECONDS", 30))  # per block
    wall_seconds: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_WALL_SECONDS", 60))  # per block
    memory_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_MEMORY_BYTES", 1024 * 1024 * 1024))
    processes: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_PROCESSES", 32))  # incl. threads
    output_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_OUTPUT_BYTES", 64 * 1024))
    file_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_FILE_BYTES", 100 * 1024 * 1024))
    tmp_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_TMP_BYTES", 256 * 1024 * 1024))


@dataclass
class Execution:
    """What running one block gave.

    output: stdout and stderr as the model sees them (cut at the output limit, with a note);
    error: None when the block ran to its end, else why not (an exception's name, or one of
    "wall_time", "output", "died", "unavailable"); images: PNGs of the figures the block left
    open; files: names of the work dir's files it created or changed; restarted: the interpreter
    was stopped, so the next block starts with no variables (the files stay).
    """

    output: str
    error: str | None = None
    images: list[bytes] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    restarted: bool = False


class Box(Protocol):
    async def execute(self, code: str) -> Execution:
        """Runs a block in the session's interpreter (started on first use, and again after it
        was stopped). A limit hit is an Execution with error set, never an exception."""
        ...

    async def write_file(self, name: str, data: bytes) -> None:
        """Puts a file in the work dir (name: a plain file name)."""
        ...

    async def read_file(self, name: str, max_bytes: int) -> bytes | None:
        """A regular file of the work dir, or None if there is none (or it is larger)."""
        ...

    async def close(self) -> None:
        """Stops the interpreter and removes the work dir."""
        ...


class Sandbox(Protocol):
    limits: Limits

    def unavailable(self) -> str | None:
        """Why this sandbox cannot run code here (e.g. bwrap is missing), or None."""
        ...

    async def open(self, session_id: str) -> Box:
        """A new box with an empty work dir."""
        ...
