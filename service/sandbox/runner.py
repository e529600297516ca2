"""The interpreter loop that runs inside a sandbox (a standalone script: it imports nothing of
assistd, only the standard library, and matplotlib when the code used it).

It reads code blocks as frames (4-byte big-endian length + JSON) on its stdin and answers each on
its stdout. The protocol pipes are moved to other descriptors first, so what the code prints
(fd 1 and 2, also from subprocesses) goes to a capture file instead. Globals survive between
blocks. Limits are set here, before any code runs: the code cannot raise a hard limit.

argv[1] is a JSON object: memory_bytes, processes, file_bytes, cpu_seconds, output_bytes, workdir,
mplconfig (a matplotlib config dir to start from, or "").
"""

import ast
import base64
import io
import json
import os
import resource
import shutil
import signal
import struct
import sys
import traceback
import typing

CAPTURE = "/tmp/.assistd-output"


def _read_frame(stream):
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _write_frame(stream, obj) -> None:
    data = json.dumps(obj).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _limit(which: int, value: int) -> None:
    if value > 0:
        resource.setrlimit(which, (value, value))


def _snapshot(workdir: str) -> dict:
    """Regular files at the top of the work dir: name -> (mtime, size)."""
    files = {}
    for entry in os.scandir(workdir):
        if entry.is_file(follow_symlinks=False):
            stat = entry.stat(follow_symlinks=False)
            files[entry.name] = (stat.st_mtime_ns, stat.st_size)
    return files


def _figures() -> list:
    """Open matplotlib figures as base64 PNGs (then closed), as a notebook shows them."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    images = []
    for number in pyplot.get_fignums():
        buffer = io.BytesIO()
        pyplot.figure(number).savefig(buffer, format="png")
        images.append(base64.b64encode(buffer.getvalue()).decode())
    pyplot.close("all")
    return images


def _run(code: str, namespace: dict) -> None:
    """Runs a block; a last bare expression is printed like a REPL shows it."""
    tree = ast.parse(code, "<python>")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, "<python>", "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<python>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def _print_error(exc: BaseException) -> None:
    """The traceback from the code's own frames on (the runner's are noise to the model)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<python>":
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _on_cpu_limit(signum, frame):
    raise TimeoutError("CPU time limit exceeded")


def main() -> None:
    config = json.loads(sys.argv[1])
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    _limit(resource.RLIMIT_AS, config["memory_bytes"])
    _limit(resource.RLIMIT_NPROC, config["processes"])
    _limit(resource.RLIMIT_FSIZE, config["file_bytes"])
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past file_bytes fails instead of killing
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    if config.get("mplconfig") and os.path.isdir(config["mplconfig"]):  # a font cache built at install
        shutil.copytree(config["mplconfig"], os.environ.get("MPLCONFIGDIR", "/tmp/.matplotlib"), dirs_exist_ok=True)
    # Line buffered, so prints and tracebacks stay in the order they happened.
    typing.cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
    me = os.getpid()
    workdir = config["workdir"]
    namespace = {"__name__": "__main__"}
    while True:
        request = _read_frame(requests)
        if request is None:
            return
        capture = os.open(CAPTURE, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(capture, 1)
        os.dup2(capture, 2)
        before = _snapshot(workdir)
        # The CPU limit is per block: the soft limit moves on from what the session used so far.
        resource.setrlimit(resource.RLIMIT_CPU, (int(_cpu_used()) + config["cpu_seconds"], resource.RLIM_INFINITY))
        error = None
        try:
            _run(request["code"], namespace)
        except BaseException as exc:  # the code's errors, SystemExit included, are its output
            if os.getpid() != me:
                os._exit(1)
            error = type(exc).__name__
            try:
                sys.stdout.flush()
                _print_error(exc)
            except BaseException:
                print(error, file=sys.stderr)
        finally:
            if os.getpid() != me:  # a process the code forked never answers
                os._exit(0)
        images = []
        try:
            images = _figures()
        except BaseException as exc:
            print(f"(could not save the figure: {exc!r})", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        size = os.fstat(capture).st_size
        limit = config["output_bytes"]
        output = os.pread(capture, limit, 0)
        os.close(capture)
        changed = [name for name, stamp in _snapshot(workdir).items() if before.get(name) != stamp]
        _write_frame(
            answers,
            {
                "output": output.decode("utf-8", "replace"),
                "output_bytes": size,
                "error": error,
                "images": images,
                "files": changed,
            },
        )


if __name__ == "__main__":
    main()
