"""What the edge tells operators: a request id on every request (and every log line about it),
Prometheus metrics, one access log line per request, and a client that hangs up logged once,
at INFO, instead of as an error."""

import asyncio
import logging
import secrets
import time

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from service import tracing
from service.logs import REQUEST_ID
from service.metrics import exposition

log = logging.getLogger("edge.access")

REQUESTS = Counter("assistd_http_requests_total", "HTTP requests, by route and status.", ["method", "route", "status"])
SECONDS = Histogram(
    "assistd_http_request_duration_seconds",
    "HTTP requests, start to end (a stream: to its last event).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
IN_FLIGHT = Gauge(
    "assistd_http_requests_in_flight", "HTTP requests being answered now (open streams included).", ["route"]
)
CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer
REQUEST_ID_KEY = web.RequestKey("request_id", str)  # the request's id, as its x-request-id header says
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})  # asked every few seconds: counted, not logged


def _safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _route(request: web.Request) -> str:
    """The route's template (`/v1/threads/{thread_id}/runs`), so ids do not become labels."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def observe(request: web.Request, handler):
    """The outermost middleware: request id, metrics, access log, client disconnects."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if given and _safe(given) and len(given) <= 128 else f"req_{secrets.token_hex(16)}"
    request[REQUEST_ID_KEY] = request_id
    REQUEST_ID.set(request_id)  # aiohttp runs each request in a task of its own
    route = _route(request)
    in_flight = IN_FLIGHT.labels(route)
    in_flight.inc()
    start = time.perf_counter()
    status = 500
    try:
        with tracing.span(f"{request.method} {route}", "SERVER", **{"http.route": route}) as traced:
            response = await handler(request)
            status = response.status
            tracing.set_attributes(traced, **{"http.response.status_code": status})
        return response
    except asyncio.CancelledError:
        if _gone(request):
            status = CLIENT_CLOSED
            _disconnected(request, route)
        raise
    except ConnectionResetError:  # the client hung up while we wrote to it
        status = CLIENT_CLOSED
        _disconnected(request, route)
        return web.Response(status=CLIENT_CLOSED)  # aiohttp cannot send it, and says nothing
    finally:
        elapsed = time.perf_counter() - start
        in_flight.dec()
        REQUESTS.labels(request.method, route, str(status)).inc()
        SECONDS.labels(request.method, route).observe(elapsed)
        if status != CLIENT_CLOSED and route not in _PROBES:
            log.info(
                "%s %s %d",
                request.method,
                request.path,
                status,
                extra={"route": route, "status": status, "duration_ms": round(elapsed * 1000, 1)},
            )


def _disconnected(request: web.Request, route: str) -> None:
    log.info(
        "client disconnected: %s %s",
        request.method,
        request.path,
        extra={"route": route, "status": CLIENT_CLOSED, "event": "client_disconnected"},
    )


async def metrics(request: web.Request) -> web.Response:
    body, content_type = exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
