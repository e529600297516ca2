"""OpenTelemetry tracing of a run, edge -> service -> provider, behind ASSISTD_TRACING (off by default).

With tracing on, one trace shows an HTTP request at the edge, the gRPC call it made (the context
crosses in `traceparent` metadata), the run segment it started and each model call of that
segment. Off, every helper here is a no-op and OpenTelemetry is never imported.

ASSISTD_TRACING=otlp exports over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT (the standard OTEL_*
variables apply); ASSISTD_TRACING=console writes spans to stderr.
"""

import contextlib
from collections.abc import Iterator, Sequence
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


class ProviderCallSpan:
    """An observer of one model call (service/llm/observed.py): a client span with the model, the
    time to first token, the tokens and the outcome."""

    def __init__(self, request: Any) -> None:
        from opentelemetry.trace import SpanKind

        # Not made current: a generator may be closed from another context, where detaching fails.
        self._span = _tracer.start_span(
            f"chat {request.model}",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": request.model},
        )

    def first_token(self, seconds: float) -> None:
        self._span.set_attribute("assistd.time_to_first_token_ms", seconds * 1000)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self._span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
        self._span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)

    def ended(self, outcome: str, seconds: float, error: BaseException | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._span.end()


def provider_observers() -> list[Any]:
    """The model-call observer of tracing when it is on (none when off)."""
    return [] if _tracer is None else [ProviderCallSpan]
