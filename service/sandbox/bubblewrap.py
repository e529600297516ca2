"""The bubblewrap backend: each box's interpreter runs under `bwrap` in new user, mount, PID,
network, IPC, UTS and cgroup namespaces.

Inside there is only: /usr read-only (and the /bin, /lib symlinks), the sandbox's Python (its
base install and the venv with numpy, pandas, matplotlib) read-only, /etc/ld.so.cache and
/etc/fonts read-only, the runner script, a fresh /dev and /proc, a size-capped /tmp, and the
box's work dir read-write at /mnt/data (OpenAI's path). No network device but loopback, no
environment of the server's, nothing else of /etc, no /home, no data of assistd's. When assistd
runs as root, each box runs as its own host uid (UID_BASE + slot): the process limit then counts
that box's processes only, and boxes cannot touch each other's files even through a shared
mount. The runner sets the rlimits (runner.py).
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import stat
import struct
from pathlib import Path

from service.sandbox.base import Execution, Limits

RUNNER = Path(__file__).with_name("runner.py")
INSIDE_RUNNER = "/opt/assistd/runner.py"
# The venv is mounted here, not at its host path: that path may lie under /tmp (a checkout there),
# which the box's own /tmp would hide. A venv runs from anywhere its pyvenv.cfg sits beside bin/.
INSIDE_VENV = "/opt/assistd/venv"
INSIDE_WORKDIR = "/mnt/data"
UID_BASE = 200_000  # host uids of the boxes when assistd runs as root
MAX_IMAGE_BYTES = 16 * 1024 * 1024
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".cache" / "sandbox" / "venv"


class _Slots:
    """Host uids handed to live boxes, so no two live boxes share one."""

    def __init__(self, size: int):
        self._free = list(range(size))

    def take(self) -> int:
        if not self._free:
            raise RuntimeError("too many code_interpreter sessions on this server")
        return self._free.pop(0)

    def give(self, slot: int) -> None:
        self._free.append(slot)


class BubblewrapSandbox:
    def __init__(self, root: Path, limits: Limits | None = None, venv: Path | None = None, max_boxes: int = 1024):
        self.limits = limits or Limits()
        self._base = Path(root)
        # Each process its own dir: replicas sharing a data dir never meet; dead ones' are swept.
        self._root = self._base / f"process-{os.getpid()}"
        self._venv = Path(venv or os.environ.get("ASSISTD_SANDBOX_VENV") or DEFAULT_VENV)
        self._slots = _Slots(max_boxes)
        self._as_root = os.geteuid() == 0
        self._swept = False
        self._ready = False

    def unavailable(self) -> str | None:
        """Checked until it passes once (bwrap may be installed while the server runs)."""
        if self._ready:
            return None
        reason = self._check()
        self._ready = reason is None
        return reason

    def _check(self) -> str | None:
        if shutil.which("bwrap") is None:
            return "code_interpreter is unavailable on this server: bubblewrap (bwrap) is not installed."
        if self._as_root and shutil.which("setpriv") is None:
            return "code_interpreter is unavailable on this server: setpriv (util-linux) is not installed."
        if not (self._venv / "bin" / "python").exists():
            return f"code_interpreter is unavailable on this server: no sandbox Python at {self._venv} (make install)."
        if self._as_root and not _reachable(self._base):
            return f"code_interpreter is unavailable on this server: the boxes' uids cannot reach {self._base}."
        return None

    async def open(self, session_id: str) -> "BubblewrapBox":
        slot = self._slots.take()
        workdir = self._root / session_id
        uid = UID_BASE + slot if self._as_root else os.geteuid()
        try:
            if not self._swept:
                await asyncio.to_thread(_sweep, self._base)
                self._swept = True
            await asyncio.to_thread(_make_workdir, workdir, uid)
        except BaseException:
            self._slots.give(slot)
            raise
        return BubblewrapBox(self, workdir, slot, uid)

    def command(self, workdir: Path) -> list[str]:
        """The bwrap command line of a box's interpreter."""
        python_home = _python_home(self._venv)
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
        args += ["--uid", "1000", "--gid", "1000"]
        args += ["--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin"):
            target = os.readlink(f"/{link}") if os.path.islink(f"/{link}") else None
            if target is not None:
                args += ["--symlink", target, f"/{link}"]
            elif os.path.isdir(f"/{link}"):
                args += ["--ro-bind", f"/{link}", f"/{link}"]
        for shared in ("/etc/ld.so.cache", "/etc/fonts"):  # the loader's cache, fontconfig's settings
            args += ["--ro-bind-try", shared, shared]
        if not python_home.is_relative_to("/usr"):
            args += ["--ro-bind", str(python_home), str(python_home)]
        args += ["--ro-bind", str(self._venv), INSIDE_VENV]
        args += ["--ro-bind", str(RUNNER), INSIDE_RUNNER]
        args += ["--dev", "/dev", "--proc", "/proc"]
        args += ["--size", str(self.limits.tmp_bytes), "--tmpfs", "/tmp"]
        args += ["--bind", str(workdir), INSIDE_WORKDIR, "--chdir", INSIDE_WORKDIR]
        config = {
            "memory_bytes": self.limits.memory_bytes,
            "processes": self.limits.processes,
            "file_bytes": self.limits.file_bytes,
            "cpu_seconds": self.limits.cpu_seconds,
            "output_bytes": self.limits.output_bytes,
            "workdir": INSIDE_WORKDIR,
            "mplconfig": f"{INSIDE_VENV}/mplconfig",
        }
        args += [f"{INSIDE_VENV}/bin/python", "-I", "-B", INSIDE_RUNNER, json.dumps(config)]
        return args

    def environment(self) -> dict[str, str]:
        """All the environment the box gets: nothing of the server's."""
        return {
            "PATH": f"{INSIDE_VENV}/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }

    def release(self, slot: int) -> None:
        self._slots.give(slot)


def _python_home(venv: Path) -> Path:
    """The base Python install a venv runs on (its pyvenv.cfg `home` is that install's bin)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).resolve().parent
    return Path("/usr")


def _reachable(root: Path) -> bool:
    """Whether other users may pass through every directory down to root (bwrap opens the work
    dir as the box's uid). root itself is made so."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    return all(os.stat(parent).st_mode & 0o001 for parent in root.parents)


def _sweep(base: Path) -> None:
    """Removes the work dirs of assistd processes that are gone (a crash leaves them)."""
    for entry in base.glob("process-*"):
        pid = entry.name.removeprefix("process-")
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(entry, ignore_errors=True)
            except PermissionError:
                pass  # alive, someone else's


def _make_workdir(workdir: Path, uid: int) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    workdir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(workdir, uid, uid)


def _write(workdir: Path, name: str, data: bytes, uid: int) -> None:
    """Writes through a temporary name and a rename: a symlink the code left under that name is
    replaced, never followed."""
    temporary = f".assistd-upload-{os.getpid()}-{name}"
    fd = os.open(workdir / temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        if os.geteuid() == 0:
            os.chown(workdir / temporary, uid, uid, follow_symlinks=False)
        os.replace(workdir / temporary, workdir / name)
    except BaseException:
        (workdir / temporary).unlink(missing_ok=True)
        raise


def _read(workdir: Path, name: str, max_bytes: int) -> bytes | None:
    try:
        fd = os.open(workdir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        return file.read(max_bytes + 1)[:max_bytes]


def plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


class BubblewrapBox:
    def __init__(self, sandbox: BubblewrapSandbox, workdir: Path, slot: int, uid: int):
        self._sandbox = sandbox
        self.workdir = workdir
        self._slot = slot
        self._uid = uid
        self._process: asyncio.subprocess.Process | None = None
        self._closed = False

    async def _start(self) -> asyncio.subprocess.Process:
        sandbox = self._sandbox
        # setpriv, not Popen's user=: the server's event loop (uvloop) has no such option.
        switch = ["setpriv", f"--reuid={self._uid}", f"--regid={self._uid}", "--clear-groups", "--"]
        return await asyncio.create_subprocess_exec(
            *(switch if sandbox._as_root else []),
            *sandbox.command(self.workdir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=sandbox.environment(),
            start_new_session=True,
            limit=2**16,
        )

    async def execute(self, code: str) -> Execution:
        limits = self._sandbox.limits
        if (reason := self._sandbox.unavailable()) is not None:
            return Execution(output=reason, error="unavailable")
        if self._process is None or self._process.returncode is not None:
            self._process = await self._start()
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        request = json.dumps({"code": code}).encode()
        try:
            process.stdin.write(struct.pack(">I", len(request)) + request)
            await process.stdin.drain()
            answer = await asyncio.wait_for(self._answer(process), limits.wall_seconds)
        except TimeoutError:
            await self._stop()
            return Execution(
                output=f"Execution stopped: it ran past the {limits.wall_seconds}-second time limit. "
                "The Python session was restarted: variables are lost, files in /mnt/data are kept.",
                error="wall_time",
                restarted=True,
            )
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return await self._died()
        except asyncio.CancelledError:
            self._kill()  # its answer would come to the next block: a cancelled block ends the interpreter
            raise
        return self._execution(answer)

    async def _answer(self, process: asyncio.subprocess.Process) -> dict:
        assert process.stdout is not None
        (size,) = struct.unpack(">I", await process.stdout.readexactly(4))
        limits = self._sandbox.limits
        if size > limits.output_bytes * 4 + 8 * MAX_IMAGE_BYTES:
            raise ValueError("answer too large")
        return json.loads(await process.stdout.readexactly(size))

    def _execution(self, answer: dict) -> Execution:
        limits = self._sandbox.limits
        output = str(answer.get("output", ""))
        error = answer.get("error")
        if int(answer.get("output_bytes", 0)) > limits.output_bytes:
            output += f"\n[output truncated: more than {limits.output_bytes} bytes]"
            error = error or "output"
        images = []
        for encoded in answer.get("images", []):
            data = base64.b64decode(encoded)
            if len(data) <= MAX_IMAGE_BYTES and data.startswith(b"\x89PNG"):
                images.append(data)
        files = [name for name in answer.get("files", []) if isinstance(name, str) and plain_name(name)]
        return Execution(output=output, error=error, images=images, files=files)

    async def _died(self) -> Execution:
        """The interpreter ended mid-block: a limit the kernel enforces, or the code exited it."""
        process = self._process
        await self._stop()
        how = ""
        if process is not None and process.returncode is not None and process.returncode < 0:
            how = f" (signal {signal.Signals(-process.returncode).name})"
        elif process is not None and process.stderr is not None:
            said = (await process.stderr.read(2000)).decode("utf-8", "replace").strip()
            how = f": {said}" if said else ""
        return Execution(
            output=f"The Python process ended{how}, e.g. a memory, CPU time or process limit was hit. "
            "The Python session was restarted: variables are lost, files in /mnt/data are kept.",
            error="died",
            restarted=True,
        )

    def _kill(self) -> asyncio.subprocess.Process | None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # bwrap and the namespace's pid 1 with it
            except ProcessLookupError:
                pass
        return process

    async def _stop(self) -> None:
        if (process := self._kill()) is not None:
            await process.wait()

    async def write_file(self, name: str, data: bytes) -> None:
        if not plain_name(name):
            raise ValueError(f"not a plain file name: {name!r}")
        await asyncio.to_thread(_write, self.workdir, name, data, self._uid)

    async def read_file(self, name: str, max_bytes: int) -> bytes | None:
        if not plain_name(name):
            return None
        return await asyncio.to_thread(_read, self.workdir, name, max_bytes)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._stop()
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)
        self._sandbox.release(self._slot)
