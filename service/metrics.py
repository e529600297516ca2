"""Prometheus metrics of the service, and where they are taken.

Nothing here reaches into the engine: the service's parts are wrapped instead.
- MeteredStore wraps the Store: latency and errors of every store operation, event-log commit
  latency, and the run events as they are committed (runs created and finished by status, time
  to the first token of a segment, tokens by model and tenant, from each step's usage).
- ProviderCallMetrics observes each model call (service/llm/observed.py): request latency, time
  to first token and errors by model.
- ServerInterceptor wraps every gRPC call: calls by method and status code, latency, active
  streams, messages sent; and it puts the caller's `x-request-id` in the logging context.
  MeteredLocalStreams counts the run streams `assistd serve` follows in-process the same way.
The HTTP edge's own metrics are in edge/observe.py. Everything goes to prometheus_client's
default registry, so one `/metrics` shows all of a process (`assistd serve` is one process).
"""

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aiohttp import web
from assistd.v1 import run_pb2
from grpc_health.v1 import health, health_pb2
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from service import tracing
from service.llm import ChatRequest, ProviderError
from service.logs import REQUEST_ID
from service.protojson import enum_name
from service.validation import tolerant

log = logging.getLogger(__name__)
E = run_pb2

# Latency buckets: fast store calls up to slow model answers.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

RUNS_CREATED = Counter("assistd_runs_created_total", "Runs created.", ["model"])
RUNS_FINISHED = Counter("assistd_runs_finished_total", "Runs that ended, by final status.", ["status", "model"])
RUNS_WAITING = Counter("assistd_runs_requires_action_total", "Times a run stopped for tool outputs.", ["model"])
RUN_TTFT = Histogram(
    "assistd_run_time_to_first_token_seconds",
    "From the first event of a run segment to its first text or tool-call delta, as committed (what a client sees).",
    ["model"],
    buckets=_SLOW,
)
TOKENS = Counter("assistd_tokens_total", "Tokens used by finished run steps.", ["model", "tenant", "kind"])
PROVIDER_SECONDS = Histogram(
    "assistd_provider_request_seconds",
    "Model provider requests, start to last delta.",
    ["model", "outcome"],
    buckets=_SLOW,
)
PROVIDER_TTFT = Histogram(
    "assistd_provider_time_to_first_token_seconds",
    "Model provider requests, start to first text or tool-call delta.",
    ["model"],
    buckets=_SLOW,
)
PROVIDER_ERRORS = Counter(
    "assistd_provider_errors_total", "Model provider failures, by last_error code.", ["model", "code"]
)
COMMIT_SECONDS = Histogram(
    "assistd_event_log_commit_seconds", "Event log group commits (one store round trip each).", buckets=_FAST
)
COMMITTED_EVENTS = Counter("assistd_event_log_events_total", "Run events committed to the event log.")
STORE_SECONDS = Histogram("assistd_store_operation_seconds", "Store operations.", ["operation"], buckets=_FAST)
STORE_ERRORS = Counter("assistd_store_errors_total", "Store operations that failed.", ["operation", "error"])
GRPC_STARTED = Counter("grpc_server_started_total", "gRPC calls started.", ["grpc_service", "grpc_method"])
GRPC_HANDLED = Counter(
    "grpc_server_handled_total", "gRPC calls finished, by status code.", ["grpc_service", "grpc_method", "grpc_code"]
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds", "gRPC calls, start to end.", ["grpc_service", "grpc_method"], buckets=_SLOW
)
GRPC_SENT = Counter(
    "grpc_server_msg_sent_total", "Messages sent on gRPC server streams.", ["grpc_service", "grpc_method"]
)
GRPC_STREAMS = Gauge(
    "grpc_server_streams_active", "Server-streaming gRPC calls open now.", ["grpc_service", "grpc_method"]
)

_TERMINAL_EVENTS = {
    E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED,
    E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE,
    E.RUN_EVENT_TYPE_THREAD_RUN_FAILED,
    E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED,
    E.RUN_EVENT_TYPE_THREAD_RUN_EXPIRED,
}
_STEP_ENDS = {
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED,
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED,
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED,
    E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED,
}
_FIRST_OUTPUT = {E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA}


def exposition() -> tuple[bytes, str]:
    """This process's metrics in Prometheus' text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


# ---------------------------------------------------------------- runs, from the event log


class _Segment:
    __slots__ = ("first_output", "model", "started", "unpriced")

    def __init__(self, model: str, started: float):
        self.model = model
        self.started = started
        self.first_output = False
        self.unpriced: list = []  # step usages seen before the segment showed its run's model


class RunEventObserver:
    """Counts what committed run events say. A segment is one stretch of a run's events up to a
    `done`; all of it is committed by one process, so what is counted here is counted once.
    A segment that resumes a run starts with a step event, before any event shows the run (and
    its model): the step's tokens wait for the first run event of the segment."""

    MAX_OPEN = 10_000  # runs whose `done` never came (a crash) are forgotten past this many

    def __init__(self) -> None:
        self._open: dict[str, _Segment] = {}

    def committed(self, tenant: str, run_id: str, data: bytes, now: float) -> None:
        event = run_pb2.RunEvent.FromString(data)
        kind = event.event
        segment = self._open.get(run_id)
        if segment is None:
            if len(self._open) >= self.MAX_OPEN:
                self._open.clear()
            segment = self._open[run_id] = _Segment("", now)
        if event.HasField("run") and not segment.model:
            segment.model = event.run.model
            for usage in segment.unpriced:
                self._tokens(segment.model, tenant, usage)
            segment.unpriced.clear()
        model = segment.model or "unknown"
        if kind == E.RUN_EVENT_TYPE_THREAD_RUN_CREATED:
            RUNS_CREATED.labels(model).inc()
        elif kind in _TERMINAL_EVENTS:
            RUNS_FINISHED.labels(enum_name(E.RunStatus.DESCRIPTOR, event.run.status) or "unknown", model).inc()
        elif kind == E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION:
            RUNS_WAITING.labels(model).inc()
        elif kind in _FIRST_OUTPUT and not segment.first_output:
            segment.first_output = True
            RUN_TTFT.labels(model).observe(now - segment.started)
        elif kind in _STEP_ENDS and event.run_step.HasField("usage"):
            if segment.model:
                self._tokens(segment.model, tenant, event.run_step.usage)
            else:
                segment.unpriced.append(event.run_step.usage)
        elif kind == E.RUN_EVENT_TYPE_DONE:
            for usage in segment.unpriced:
                self._tokens(model, tenant, usage)
            del self._open[run_id]

    @staticmethod
    def _tokens(model: str, tenant: str, usage) -> None:
        TOKENS.labels(model, tenant, "prompt").inc(usage.prompt_tokens)
        TOKENS.labels(model, tenant, "completion").inc(usage.completion_tokens)


class MeteredStore:
    """A Store that times its operations, counts their failures, and observes committed run events."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._observer = RunEventObserver()
        self._wrapped: dict[str, Callable] = {}

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute
        if name not in self._wrapped:
            self._wrapped[name] = self._timed(name, attribute)
        return self._wrapped[name]

    @staticmethod
    def _timed(name: str, operation: Callable) -> Callable:
        seconds = STORE_SECONDS.labels(name)

        async def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await operation(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                STORE_ERRORS.labels(name, type(exc).__name__).inc()
                raise
            finally:
                seconds.observe(time.perf_counter() - start)

        return timed

    async def commit(self, entries) -> None:
        start = time.perf_counter()
        try:
            await self._inner.commit(entries)
        except Exception as exc:
            STORE_ERRORS.labels("commit", type(exc).__name__).inc()
            raise
        now = time.perf_counter()
        COMMIT_SECONDS.observe(now - start)
        self._committed(entries, now)

    async def claim_and_commit(self, tenant, thread_id, run_id, owner, entries) -> str | None:
        start = time.perf_counter()
        try:
            active = await self._inner.claim_and_commit(tenant, thread_id, run_id, owner, entries)
        except Exception as exc:
            STORE_ERRORS.labels("claim_and_commit", type(exc).__name__).inc()
            raise
        now = time.perf_counter()
        STORE_SECONDS.labels("claim_and_commit").observe(now - start)  # a run's start, not a group commit
        if active is None:
            self._committed(entries, now)
        return active

    def _committed(self, entries, now: float) -> None:
        """Counts the run events of a commit, and what they say."""
        for entry in entries:
            if entry.sequence:
                COMMITTED_EVENTS.inc()
                try:
                    self._observer.committed(entry.tenant, entry.run_id, entry.data, now)
                except Exception:  # metrics never fail a commit
                    log.exception("counting a run event failed")


READY_SECONDS = 2.0  # how long a readiness check waits for the store


async def store_ready(store: Any) -> bool:
    """Whether the store answers a read within READY_SECONDS."""
    try:
        async with asyncio.timeout(READY_SECONDS):
            await store.active_run("", "readiness-check")
        return True
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("the store is not ready: %s", exc)
        return False


class StoreHealth(health.aio.HealthServicer):
    """The standard health service, NOT_SERVING while the store does not answer (the edge's
    /readyz asks it)."""

    def __init__(self, store: Any) -> None:
        super().__init__()
        self._store = store

    async def Check(self, request, context):
        response = await super().Check(request, context)
        if response.status == health_pb2.HealthCheckResponse.SERVING and not await store_ready(self._store):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return response


# ---------------------------------------------------------------- the model provider


class ProviderCallMetrics:
    """An observer of one model call (service/llm/observed.py): latency, time to first token and
    errors, by model."""

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model

    def first_token(self, seconds: float) -> None:
        PROVIDER_TTFT.labels(self._model).observe(seconds)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        pass  # tokens are counted from the run steps' usage (MeteredStore)

    def ended(self, outcome: str, seconds: float, error: BaseException | None) -> None:
        if isinstance(error, ProviderError):
            PROVIDER_ERRORS.labels(self._model, error.code).inc()
        PROVIDER_SECONDS.labels(self._model, outcome).observe(seconds)


# ---------------------------------------------------------------- gRPC calls


def _code(context, exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN" if exc is not None else "OK"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call, and runs it with the caller's request id in the logging context."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        _, service, method = handler_call_details.method.split("/")
        given = dict(handler_call_details.invocation_metadata or ()).get("x-request-id")
        request_id = given if isinstance(given, str) and given else f"req_{secrets.token_hex(16)}"
        labels = (service.rsplit(".", 1)[-1], method)
        serializers = {
            # bytes that are no message become INVALID_ARGUMENT (service/validation.py), not UNKNOWN
            "request_deserializer": tolerant(handler.request_deserializer) if handler.request_deserializer else None,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, labels, request_id, handler_call_details), **serializers
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, labels, request_id, handler_call_details), **serializers
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, labels, request_id, handler_call_details), **serializers
            )
        return handler  # bidirectional streams: none in the API


def _unary(behavior: Callable, labels: tuple[str, str], request_id: str, details) -> Callable:
    async def call(request, context):
        REQUEST_ID.set(request_id)  # each call runs in a task of its own: the value ends with it
        GRPC_STARTED.labels(*labels).inc()
        start = time.perf_counter()
        failure: BaseException | None = None
        try:
            with tracing.rpc_span(details.method, details.invocation_metadata):
                return await behavior(request, context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            GRPC_SECONDS.labels(*labels).observe(time.perf_counter() - start)
            GRPC_HANDLED.labels(*labels, _code(context, failure)).inc()

    return call


def _streaming(behavior: Callable, labels: tuple[str, str], request_id: str, details) -> Callable:
    async def call(request, context):
        REQUEST_ID.set(request_id)  # each call runs in a task of its own: the value ends with it
        GRPC_STARTED.labels(*labels).inc()
        streams = GRPC_STREAMS.labels(*labels)
        sent = GRPC_SENT.labels(*labels)
        streams.inc()
        start = time.perf_counter()
        failure: BaseException | None = None
        try:
            with tracing.rpc_span(details.method, details.invocation_metadata):
                async for response in behavior(request, context):
                    sent.inc()
                    yield response
        except BaseException as exc:
            failure = exc
            raise
        finally:
            streams.dec()
            GRPC_SECONDS.labels(*labels).observe(time.perf_counter() - start)
            GRPC_HANDLED.labels(*labels, _code(context, failure)).inc()

    return call


class MeteredLocalStreams:
    """The in-process run streams of `assistd serve` (service/local_calls.py), counted as the gRPC
    calls they stand in for: the same method, the same outcome, only without the loopback hop."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, path: str, request: Any, metadata: Any) -> AsyncIterator[Any]:
        _, service, method = path.split("/")
        return self._stream((service.rsplit(".", 1)[-1], method), self._inner(path, request, metadata))

    @staticmethod
    async def _stream(labels: tuple[str, str], responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
        GRPC_STARTED.labels(*labels).inc()
        streams = GRPC_STREAMS.labels(*labels)
        sent = GRPC_SENT.labels(*labels)
        streams.inc()
        start = time.perf_counter()
        code = "OK"
        try:
            async for response in responses:
                sent.inc()
                yield response
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except Exception:
            code = "UNKNOWN"
            raise
        finally:
            closing = getattr(responses, "aclose", None)
            if closing is not None:
                await closing()
            streams.dec()
            GRPC_SECONDS.labels(*labels).observe(time.perf_counter() - start)
            GRPC_HANDLED.labels(*labels, code).inc()


# ---------------------------------------------------------------- `assistd service` alone


def admin_app(store: Any) -> web.Application:
    """/metrics, /healthz and /readyz (the store answers) for a process with no HTTP edge."""

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready = await store_ready(store)
        return web.json_response({"status": "ok" if ready else "unavailable"}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
