"""GET /openapi.json, built on its first request by edge/openapi.py.

The builder imports the openai SDK's types (pydantic models of the whole API): on this machine
about two seconds and ~35 MB. A process nobody asks for the document never pays for them, so
`assistd serve` starts as fast as before the document existed.
"""

import asyncio
import json

from aiohttp import web

DOCUMENT = web.AppKey("openapi_document", dict)


def setup(app: web.Application) -> None:
    """Serves GET /openapi.json (no key needed). Built on first request, the document lists every
    route the app has by then, whichever module added it."""
    app[DOCUMENT] = {}
    app.router.add_get("/openapi.json", _serve)


async def _serve(request: web.Request) -> web.Response:
    cache = request.app[DOCUMENT]
    if "body" not in cache:  # built once, off the event loop (the imports and pydantic take seconds)
        app = request.app

        def build() -> bytes:
            from edge import openapi

            return json.dumps(openapi.document(app), separators=(",", ":")).encode()

        cache["body"] = await asyncio.to_thread(build)
    return web.Response(body=cache["body"], content_type="application/json")
