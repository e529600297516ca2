"""Settings, from command-line flags or ASSISTD_* environment variables."""

import os
from dataclasses import dataclass, field


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _parse_keys(spec: str) -> dict[str, str]:
    """`key1=tenant1,key2=tenant2` -> {key: tenant}; a key without `=tenant` is its own tenant."""
    keys = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, _, tenant = item.partition("=")
        keys[key] = tenant or key
    return keys


@dataclass(frozen=True)
class Settings:
    http_host: str = field(default_factory=lambda: os.environ.get("ASSISTD_HTTP_HOST", "127.0.0.1"))
    http_port: int = field(default_factory=lambda: _env_int("ASSISTD_HTTP_PORT", 8080))
    grpc_host: str = field(default_factory=lambda: os.environ.get("ASSISTD_GRPC_HOST", "127.0.0.1"))
    grpc_port: int = field(default_factory=lambda: _env_int("ASSISTD_GRPC_PORT", 50051))
    # Where the edge finds the service (`assistd edge`); defaults to grpc_host:grpc_port.
    grpc_target: str = field(default_factory=lambda: os.environ.get("ASSISTD_GRPC_TARGET", ""))
    store: str = field(default_factory=lambda: os.environ.get("ASSISTD_STORE", "sqlite:///data/assistd.db"))
    models: str = field(default_factory=lambda: os.environ.get("ASSISTD_MODELS", ""))
    api_keys: dict[str, str] = field(default_factory=lambda: _parse_keys(os.environ.get("ASSISTD_API_KEYS", "")))
    # litellm embedding model for hybrid (keyword + vector) search; empty = keyword search only.
    embedding_model: str = field(default_factory=lambda: os.environ.get("ASSISTD_EMBEDDING_MODEL", ""))
    # Largest file POST /v1/files accepts.
    max_file_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_MAX_FILE_BYTES", 512 * 1024 * 1024))
    # Largest JSON request body the edge reads (a 413 above it); file uploads stream, up to max_file_bytes.
    max_json_bytes: int = field(default_factory=lambda: _env_int("ASSISTD_MAX_JSON_BYTES", 4 * 1024 * 1024))
    # Per-tenant limits (service/limits.py), 0 = none: requests per second (a token bucket of
    # `burst` tokens, per replica) and runs working at once (counted in the store: all replicas).
    tenant_rps: float = field(default_factory=lambda: _env_float("ASSISTD_TENANT_RPS", 0.0))
    tenant_burst: int = field(default_factory=lambda: _env_int("ASSISTD_TENANT_BURST", 0))
    tenant_max_active_runs: int = field(default_factory=lambda: _env_int("ASSISTD_TENANT_MAX_ACTIVE_RUNS", 0))
    # base64 of 32 bytes: the AES-256-GCM key of the tenants' provider credentials (service/credentials.py).
    master_key: str = field(default_factory=lambda: os.environ.get("ASSISTD_MASTER_KEY", ""))
    # A process that has not renewed its heartbeat for this long is taken as gone: other replicas
    # end its runs (failed, server_error).
    run_lease_seconds: int = field(default_factory=lambda: _env_int("ASSISTD_RUN_LEASE_SECONDS", 15))
    # Seconds a run may wait in requires_action before it expires.
    run_expiry_seconds: int = field(default_factory=lambda: _env_int("ASSISTD_RUN_EXPIRY_SECONDS", 600))
    # Which adapter reaches models: `auto` = the lean OpenAI-compatible reader for `openai/...` models
    # and OpenAI-compatible deployments, litellm for the rest; `litellm` = litellm for every model.
    provider_adapter: str = field(default_factory=lambda: os.environ.get("ASSISTD_PROVIDER_ADAPTER", "auto"))
    # Provider retries on rate limits and unavailability, before anything was streamed.
    llm_retries: int = field(default_factory=lambda: _env_int("ASSISTD_LLM_RETRIES", 0))
    llm_timeout: float = field(default_factory=lambda: _env_float("ASSISTD_LLM_TIMEOUT", 600.0))
    # Models without native function calling: tools are described in the prompt instead.
    tool_prompt_models: frozenset[str] = field(
        default_factory=lambda: frozenset(filter(None, os.environ.get("ASSISTD_TOOL_PROMPT_MODELS", "").split(",")))
    )
    # `assistd service` (no HTTP edge) serves /metrics, /healthz and /readyz on this port; 0 = none.
    metrics_port: int = field(default_factory=lambda: _env_int("ASSISTD_METRICS_PORT", 9464))
    # `assistd serve`: the edge follows run streams in this process instead of over loopback gRPC.
    edge_in_process: bool = field(default_factory=lambda: os.environ.get("ASSISTD_EDGE_IN_PROCESS", "1") != "0")
    # OpenTelemetry tracing of runs (service/tracing.py): "" (off), "otlp" or "console".
    tracing: str = field(default_factory=lambda: os.environ.get("ASSISTD_TRACING", ""))
    # Deadline of the edge's unary calls to the service (a stalled service answers 504).
    edge_deadline_seconds: float = field(default_factory=lambda: _env_float("ASSISTD_EDGE_DEADLINE_SECONDS", 60.0))
    # SSE comment sent when a stream has been silent this long.
    heartbeat_seconds: float = field(default_factory=lambda: _env_float("ASSISTD_HEARTBEAT_SECONDS", 15.0))
    # At SIGTERM, runs still working may go on this long before they are ended (failed).
    drain_seconds: float = field(default_factory=lambda: _env_float("ASSISTD_DRAIN_SECONDS", 30.0))
    # An SSE client whose socket takes no bytes for this long is dropped (it stopped reading).
    sse_write_timeout: float = field(default_factory=lambda: _env_float("ASSISTD_SSE_WRITE_TIMEOUT", 30.0))

    # code_interpreter: where the sessions' work dirs go, and how long an idle session is kept
    # (its limits: ASSISTD_SANDBOX_*, see service/sandbox/base.py).
    sandbox_dir: str = field(default_factory=lambda: os.environ.get("ASSISTD_SANDBOX_DIR", "data/sandbox"))
    sandbox_idle_seconds: int = field(default_factory=lambda: _env_int("ASSISTD_SANDBOX_IDLE_SECONDS", 20 * 60))
    # How many seconds one minute of a container's expires_after lasts (60; tests shorten it).
    container_minute_seconds: float = field(
        default_factory=lambda: _env_float("ASSISTD_CONTAINER_MINUTE_SECONDS", 60.0)
    )

    @property
    def target(self) -> str:
        """The service address the edge dials."""
        return self.grpc_target or f"{self.grpc_host}:{self.grpc_port}"
