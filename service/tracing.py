"""OpenTelemetry tracing of a run, edge -> service -> provider, behind ASSISTD_TRACING (off by default).

With tracing on, one trace shows an HTTP request at the edge, the gRPC call it made (the context
crosses in `traceparent` metadata), the run segment it started and each model call of that
segment. Off, every helper here is a no-op and OpenTelemetry is never imported.

ASSISTD_TRACING=otlp exports over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT (the standard OTEL_*
variables apply); ASSISTD_TRACING=console writes spans to stderr.
"""

import contextlib
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

_tracer: Any = None  # an opentelemetry Tracer once setup() has run with tracing on


def setup(mode: str, service_name: str) -> None:
    """Installs the tracer provider and its exporter; mode "" or "off" leaves tracing off."""
    global _tracer
    if mode in ("", "off"):
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    elif mode == "console":
        exporter = ConsoleSpanExporter()
    else:
        raise ValueError(f"ASSISTD_TRACING must be otlp, console or off, not {mode!r}")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("assistd")


def shutdown() -> None:
    """Flushes the spans not exported yet."""
    if _tracer is not None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        getattr(provider, "shutdown", lambda: None)()


@contextlib.contextmanager
def span(name: str, kind: str = "INTERNAL", **attributes: Any) -> Iterator[Any]:
    """A span around a block, current while it runs (its children and the tasks it starts see it)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(name, kind=SpanKind[kind], attributes=attributes) as current:
        yield current


def set_attributes(current: Any, **attributes: Any) -> None:
    if current is not None:
        current.set_attributes(attributes)


def inject(metadata: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Adds the current trace context (`traceparent`) to outgoing gRPC metadata."""
    if _tracer is not None:
        from opentelemetry.propagate import inject as propagate

        carrier: dict[str, str] = {}
        propagate(carrier)
        metadata.extend(carrier.items())
    return metadata


@contextlib.contextmanager
def rpc_span(method: str, metadata: Sequence[tuple[str, Any]] | None) -> Iterator[None]:
    """The server span of a gRPC call, a child of the caller's span when it sent one."""
    if _tracer is None:
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    token = context.attach(extract(carrier))
    try:
        with _tracer.start_as_current_span(method.lstrip("/"), kind=SpanKind.SERVER, attributes={"rpc.system": "grpc"}):
            yield
    finally:
        context.detach(token)


class TracedProvider:
    """A Provider whose model calls are spans (model, time to first token, tokens, outcome)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def stream(self, request: Any) -> AsyncGenerator[Any, None]:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        # Not made current: a generator may be closed from another context, where detaching fails.
        call = _tracer.start_span(
            f"chat {request.model}",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": request.model},
        )
        start = time.perf_counter()
        first = True
        try:
            async for delta in self._inner.stream(request):
                if first and (delta.text or delta.tool_calls):
                    first = False
                    call.set_attribute("assistd.time_to_first_token_ms", (time.perf_counter() - start) * 1000)
                if delta.prompt_tokens is not None:
                    call.set_attribute("gen_ai.usage.input_tokens", delta.prompt_tokens)
                    call.set_attribute("gen_ai.usage.output_tokens", delta.completion_tokens or 0)
                yield delta
        except Exception as exc:
            call.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            call.end()


def traced_provider(provider: Any) -> Any:
    """The provider itself when tracing is off, else one whose calls are spans."""
    return provider if _tracer is None else TracedProvider(provider)
