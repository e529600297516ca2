"""Fixtures: the scripted provider, and a real `assistd serve` process (edge + gRPC + SQLite)."""

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import openai
import pytest
from cassandra.cluster import Cluster, Session

from service.store.cassandra import parse_url
from tests.scripted_llm import ScriptedLLM, free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/scripted"  # an OpenAI-compatible model: the lean adapter reaches the scripted provider
LITELLM_MODEL = "scripted-litellm"  # the same provider through litellm (tests/models.yaml)
PLAIN_MODEL = "openai/scripted-plain"  # the same provider, treated as a model without native tool calls


class Server:
    """An `assistd serve` child process and where to reach it."""

    def __init__(self, tmp: Path, provider: ScriptedLLM, extra_env: dict | None = None):
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.db = tmp / "assistd.db"
        self.log_path = tmp / f"assistd-{self.http_port}.log"
        self.env = {
            **os.environ,
            "ASSISTD_HTTP_PORT": str(self.http_port),
            "ASSISTD_GRPC_PORT": str(self.grpc_port),
            "ASSISTD_STORE": f"sqlite:///{self.db}",
            "ASSISTD_MODELS": str(ROOT / "tests" / "models.yaml"),
            "ASSISTD_HEARTBEAT_SECONDS": "0.5",
            "ASSISTD_TOOL_PROMPT_MODELS": PLAIN_MODEL,
            "OPENAI_API_BASE": provider.base_url,
            "OPENAI_API_KEY": "test-key",
            "SCRIPTED_API_BASE": provider.base_url,
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, command: str = "serve") -> "Server":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", command],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        ready = threading.Event()

        def wait_ready():
            for line in self.process.stdout:
                if b"assistd ready" in line:
                    ready.set()
                    return

        threading.Thread(target=wait_ready, daemon=True).start()
        deadline = time.monotonic() + 120  # a new keyspace on the three-node cluster takes a while
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                break
        if not ready.is_set():
            self.stop()
            raise RuntimeError(f"assistd did not start; log:\n{self.log_path.read_text()[-3000:]}")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(20)

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="test-key", max_retries=0, **kwargs)


@pytest.fixture(scope="session")
def provider():
    llm = ScriptedLLM().start()
    yield llm
    llm.stop()


CASSANDRA = os.environ.get("ASSISTD_TEST_CASSANDRA_HOSTS", "127.0.0.1:9042")
# e.g. "replication_factor=3&consistency=LOCAL_QUORUM" on the three-node cluster (make test-cluster)
CASSANDRA_OPTIONS = os.environ.get("ASSISTD_TEST_CASSANDRA_OPTIONS", "")


def cassandra_url() -> str:
    """A fresh keyspace on the test Cassandra (started by `make cassandra`); drop it with drop_keyspace."""
    query = f"?{CASSANDRA_OPTIONS}" if CASSANDRA_OPTIONS else ""
    return f"cassandra://{CASSANDRA}/assistd_e2e_{uuid.uuid4().hex[:10]}{query}"


_SESSIONS: dict[tuple[str, int], Session] = {}  # one per Cassandra the tests look at, closed at the end


def cql(url: str, statement: str) -> list:
    """Runs a CQL statement on the Cassandra of a cassandra:// store URL; `{keyspace}` in it is the URL's keyspace."""
    config = parse_url(url)
    where = (",".join(config["hosts"]), config["port"])
    if where not in _SESSIONS:
        _SESSIONS[where] = Cluster(config["hosts"], port=config["port"]).connect()
    return list(_SESSIONS[where].execute(statement.format(keyspace=config["keyspace"]), timeout=120))


def pytest_sessionfinish():
    for session in _SESSIONS.values():
        session.cluster.shutdown()


def drop_keyspace(url: str) -> None:
    """Drops a keyspace made by cassandra_url() once its servers are stopped: every table holds
    Cassandra heap, and the 1 GB test node runs out after a few hundred of them."""
    cql(url, "DROP KEYSPACE IF EXISTS {keyspace}")


def pytest_generate_tests(metafunc):
    """Modules that set STORES = ["sqlite", "cassandra"] run their server tests (the shared `server`,
    or their own servers built with `store_env`) on each store."""
    stores = getattr(metafunc.module, "STORES", None)
    if stores and {"server", "store_env"} & set(metafunc.fixturenames):
        metafunc.parametrize("store_kind", stores, indirect=True, scope="session")
    # Modules that set ADAPTERS = True run their `model` tests through both provider adapters.
    if getattr(metafunc.module, "ADAPTERS", False) and "model" in metafunc.fixturenames:
        metafunc.parametrize("model", [MODEL, LITELLM_MODEL], ids=["lean", "litellm"])


@pytest.fixture(scope="session")
def store_kind(request):
    return getattr(request, "param", "sqlite")


@pytest.fixture
def store_env(store_kind):
    """Env for a test's own servers: a fresh Cassandra keyspace (dropped after the test), or (SQLite)
    the server's default file in its tmp directory. Servers of one test given the same env share one store."""
    if store_kind != "cassandra":
        yield {}
        return
    url = cassandra_url()
    yield {"ASSISTD_STORE": url}
    drop_keyspace(url)


@pytest.fixture(scope="session")
def server(provider, tmp_path_factory, store_kind):
    extra = {"ASSISTD_STORE": cassandra_url()} if store_kind == "cassandra" else {}
    srv = Server(tmp_path_factory.mktemp(f"assistd-{store_kind}"), provider, extra).start()
    yield srv
    srv.stop()
    if extra:
        drop_keyspace(extra["ASSISTD_STORE"])


@pytest.fixture
def client(server):
    return server.client()


@pytest.fixture
def model() -> str:
    """The model the test's assistants use (both adapters in modules with ADAPTERS = True)."""
    return MODEL


@pytest.fixture
def assistant(client, model):
    return client.beta.assistants.create(model=model, name="tester", instructions="You are a test assistant.")


def unique(name: str) -> str:
    """name with a random suffix: a marker only this test invocation puts in its prompts."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def marker() -> str:
    """A marker for this test invocation's prompts, so `provider.requests_with(marker)` finds its own
    requests only (the provider serves the whole session, and each store runs the same test)."""
    return unique("marker")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Polls predicate until it returns a truthy value; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def sse_frames(lines):
    """Parses SSE lines into (fields dict) frames, keeping comment lines as {"comment": ...}."""
    frame: dict = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            key, _, value = line.partition(": ")
            frame[key] = value


def go_env() -> dict[str, str]:
    """How `make` runs Go: its pinned toolchain and module cache under .cache/go, no network."""
    cache = ROOT / ".cache" / "go"
    return {
        **os.environ,
        "GOMODCACHE": str(cache / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOFLAGS": "-mod=readonly",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "PATH": f"{cache / 'toolchain' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }


def go() -> str:
    found = shutil.which("go", path=go_env()["PATH"])
    assert found, "no Go toolchain: `make install` fetches it"
    return found
