"""The code_interpreter sandbox (bubblewrap backend, real bwrap): sessions keep their state, and
every escape the issue lists fails. After each one the sandbox still runs code for others."""

import ast
import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from service.sandbox import BubblewrapSandbox, Limits, Sessions

ROOT = Path(__file__).resolve().parents[2]
SECRET = f"secret-{uuid.uuid4().hex}"
LIMITS = Limits(
    cpu_seconds=2,
    wall_seconds=8,
    memory_bytes=1024 * 1024 * 1024,
    processes=32,
    output_bytes=10_000,
    file_bytes=50 * 1024 * 1024,
    tmp_bytes=64 * 1024 * 1024,
)


@pytest.fixture(scope="module")
async def sessions():
    os.environ["ASSISTD_TEST_SANDBOX_SECRET"] = SECRET  # in the process that starts the boxes
    root = Path(tempfile.mkdtemp(prefix="assistd-boxes-"))  # pytest's tmp dirs are private to root
    pool = Sessions(BubblewrapSandbox(root, LIMITS))
    assert pool.unavailable() is None, pool.unavailable()
    yield pool
    await pool.close_all()
    shutil.rmtree(root)
    del os.environ["ASSISTD_TEST_SANDBOX_SECRET"]


async def run(sessions, code, tenant="t1", thread=None):
    execution, _ = await sessions.execute(tenant, thread or uuid.uuid4().hex, code)
    return execution


async def assert_still_works(sessions):
    """Another session runs code as usual: the escape broke nothing outside its own box."""
    assert (await run(sessions, "print(6 * 7)")).output == "42\n"


async def test_a_session_keeps_its_variables_between_blocks_and_shows_the_last_expression(sessions):
    await run(sessions, "import pandas as pd\nx = 41", thread="keep")
    assert (await run(sessions, "x + 1", thread="keep")).output == "42\n"
    assert "NameError" in (await run(sessions, "x", thread="other")).output  # not shared across threads


async def test_the_code_sees_none_of_the_servers_environment(sessions):
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
    )
    execution = await run(sessions, code)
    assert execution.error is None, execution.output
    assert "MPLBACKEND" in execution.output  # it did print the environments
    assert SECRET not in execution.output and "ASSISTD_TEST_SANDBOX_SECRET" not in execution.output
    await assert_still_works(sessions)


async def test_files_outside_the_work_dir_cannot_be_read(sessions, tmp_path):
    database = tmp_path / "assistd.db"
    database.write_text(SECRET)
    probes = [str(database), "/etc/shadow", "/etc/passwd", "/root/.bashrc", str(ROOT / "pyproject.toml")]
    code = (
        "import os\n"
        f"for path in {probes!r}:\n"
        "    try:\n"
        "        print(path, open(path).read())\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        "print(sorted(os.listdir('/')))\n"
    )
    execution = await run(sessions, code)
    assert SECRET not in execution.output
    for path in probes:
        assert f"{path} FileNotFoundError" in execution.output, execution.output
    assert "'home'" not in execution.output and "'var'" not in execution.output and "'root'" not in execution.output
    await assert_still_works(sessions)


async def test_no_network_connection_can_be_opened(sessions):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        f"for address in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=3)\n"
        "        print(address, 'connected')\n"
        "    except OSError as e:\n"
        "        print(address, type(e).__name__)\n"
    )
    execution = await run(sessions, code)
    assert "connected" not in execution.output, execution.output
    assert execution.output.count("Error") == 3
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing reached the test's own port
    listener.close()
    await assert_still_works(sessions)


async def test_a_fork_bomb_is_bounded_by_the_process_limit(sessions):
    code = "import os\nwhile True:\n    os.fork()\n"
    execution = await run(sessions, code, thread="bomb")
    assert execution.error == "BlockingIOError", execution.output
    assert "Resource temporarily unavailable" in execution.output
    assert (await run(sessions, "print('alive')", thread="bomb")).output == "alive\n"
    await assert_still_works(sessions)


async def test_allocating_past_the_memory_limit_fails_and_the_session_goes_on(sessions):
    await run(sessions, "kept = 1", thread="memory")
    execution = await run(sessions, "block = bytearray(2 * 1024 ** 3)", thread="memory")
    assert execution.error == "MemoryError", execution.output
    assert (await run(sessions, "kept", thread="memory")).output == "1\n"
    await assert_still_works(sessions)


async def test_running_past_the_cpu_time_limit_is_stopped(sessions):
    execution = await run(sessions, "while True:\n    pass\n", thread="cpu")
    assert execution.error == "TimeoutError", execution.output
    assert "CPU time limit exceeded" in execution.output
    assert (await run(sessions, "print('alive')", thread="cpu")).output == "alive\n"
    await assert_still_works(sessions)


async def test_running_past_the_wall_time_limit_restarts_the_session(sessions):
    await run(sessions, "kept = 1", thread="wall")
    execution = await run(sessions, "import time\ntime.sleep(600)", thread="wall")
    assert execution.error == "wall_time" and execution.restarted
    assert "8-second time limit" in execution.output
    assert "NameError" in (await run(sessions, "kept", thread="wall")).output  # a fresh interpreter
    await assert_still_works(sessions)


async def test_output_past_the_limit_is_cut(sessions):
    execution = await run(sessions, "print('x' * 1_000_000)")
    assert execution.error == "output"
    assert len(execution.output) < LIMITS.output_bytes + 100
    assert execution.output.endswith(f"[output truncated: more than {LIMITS.output_bytes} bytes]")
    execution = await run(sessions, "import os\nos.system('yes | head -c 2000000')")  # a subprocess's too
    assert execution.error == "output"
    await assert_still_works(sessions)


async def test_writing_a_file_past_the_file_limit_fails(sessions):
    execution = await run(sessions, "open('big', 'wb').write(b'x' * (60 * 1024 * 1024))")
    assert "File too large" in execution.output, execution.output
    await assert_still_works(sessions)


async def test_another_tenants_session_files_cannot_be_read(sessions):
    _, box = await sessions.execute("tenant-a", "thread-1", "open('mine.txt', 'w').write('tenant a data')")
    assert (await box.read_file("mine.txt", 100)) == b"tenant a data"
    host_path = os.path.join(box.workdir, "mine.txt")  # type: ignore[attr-defined]
    code = (
        "import os\n"
        "print(os.listdir('.'))\n"
        f"for path in [{host_path!r}, '../mine.txt']:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
    )
    execution = await run(sessions, code, tenant="tenant-b", thread="thread-1")  # the same thread id
    assert "tenant a data" not in execution.output and "mine.txt" not in execution.output, execution.output
    assert execution.output.count("FileNotFoundError") == 2


async def test_the_server_never_follows_a_link_the_code_left_in_the_work_dir(sessions, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    _, box = await sessions.execute("t1", "links", f"import os\nos.symlink({str(outside)!r}, 'data.csv')")
    assert await box.read_file("data.csv", 1000) is None
    await box.write_file("data.csv", b"a,b\n1,2\n")
    assert outside.read_text() == "untouched"
    assert (await run(sessions, "print(open('data.csv').read())", thread="links")).output == "a,b\n1,2\n\n"


async def test_new_files_and_open_figures_are_reported(sessions):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nopen('out.csv', 'w').write('a\\n')\n"
    execution = await run(sessions, code)
    assert execution.error is None, execution.output
    assert execution.files == ["out.csv"]
    assert len(execution.images) == 1 and execution.images[0].startswith(b"\x89PNG\r\n\x1a\n")


async def test_an_idle_session_is_closed_with_its_files_and_the_next_call_starts_afresh():
    root = Path(tempfile.mkdtemp(prefix="assistd-boxes-"))
    pool = Sessions(BubblewrapSandbox(root, LIMITS), idle_seconds=0.2)
    try:
        _, box = await pool.execute("t1", "idle", "kept = 1\nopen('f.txt', 'w').write('x')")
        workdir = box.workdir  # type: ignore[attr-defined]
        while workdir.exists():  # noqa: ASYNC110 - the reaper closes it on its own schedule
            await asyncio.sleep(0.05)
        execution = await run(pool, "import os\nprint(os.listdir('.'))\nkept", thread="idle")
        assert execution.output.startswith("[]\n") and "NameError" in execution.output
    finally:
        await pool.close_all()
        shutil.rmtree(root)


async def test_a_session_kept_idle_for_a_shorter_time_closes_first():
    root = Path(tempfile.mkdtemp(prefix="assistd-boxes-"))
    pool = Sessions(BubblewrapSandbox(root, LIMITS), idle_seconds=3600)
    try:
        pool.keep_idle("t1", "cntr_short", 0.2)  # a container's expiry
        _, short = await pool.execute("t1", "cntr_short", "print(1)")
        _, long = await pool.execute("t1", "thread_long", "print(2)")
        while short.workdir.exists():  # type: ignore[attr-defined]  # noqa: ASYNC110 - the reaper's schedule
            await asyncio.sleep(0.05)
        assert long.workdir.exists()  # type: ignore[attr-defined]  # the default idle time still holds
    finally:
        await pool.close_all()
        shutil.rmtree(root)


async def test_without_its_python_the_sandbox_says_why_as_the_output():
    root = Path(tempfile.mkdtemp(prefix="assistd-boxes-"))
    pool = Sessions(BubblewrapSandbox(root, LIMITS, venv=root / "missing-venv"))
    try:
        assert "no sandbox Python" in (pool.unavailable() or "")
        execution = await run(pool, "print(1)")
        assert execution.error == "unavailable" and "code_interpreter is unavailable" in execution.output
    finally:
        await pool.close_all()
        shutil.rmtree(root)


async def test_work_dirs_of_a_process_that_is_gone_are_swept():
    root = Path(tempfile.mkdtemp(prefix="assistd-boxes-"))
    stale = root / "process-999999999" / "abc"  # above any pid_max: a process that is gone
    stale.mkdir(parents=True)
    pool = Sessions(BubblewrapSandbox(root, LIMITS))
    try:
        await run(pool, "1")
        assert not stale.parent.exists() and os.listdir(root) == [f"process-{os.getpid()}"]
    finally:
        await pool.close_all()
        shutil.rmtree(root)


async def test_the_code_runs_in_its_own_namespaces_as_an_unprivileged_user(sessions):
    kinds = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"]
    code = (
        "import os\n"
        f"print({{kind: os.readlink(f'/proc/self/ns/{{kind}}') for kind in {kinds!r}}})\n"
        "print(os.getuid(), sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys/class/net') else None)\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])"
    )
    execution = await run(sessions, code)
    inside_ns, ids, capabilities = execution.output.splitlines()
    inside = ast.literal_eval(inside_ns)
    for kind in kinds:
        assert inside[kind] != os.readlink(f"/proc/self/ns/{kind}"), kind
    assert ids == "1000 None" and int(capabilities, 16) == 0
