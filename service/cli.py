"""`assistd serve | service | edge`: one command for the embedded default and the split deployment."""

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from service import logs, tracing
from service.config import Settings
from service.store.errors import StoreError

log = logging.getLogger("assistd")


class _CannotStart(Exception):
    """A port could not be bound, or the store not reached: reported in one line, exit status 1."""


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    overrides = {
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "store": args.store,
        "models": args.models,
        "grpc_target": getattr(args, "grpc_target", None),
    }
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


async def _serve(settings: Settings, with_service: bool, with_edge: bool) -> None:
    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    service = runner = admin = None
    sites: list = []  # the HTTP listeners, closed first at shutdown
    try:
        if with_service:
            from service.server import Service

            service = Service(settings)
            port = await service.start()
            settings = replace(settings, grpc_port=port)
            if not with_edge and settings.metrics_port:  # the edge serves these itself
                from service.metrics import admin_app

                admin = web.AppRunner(admin_app(service.store))
                await admin.setup()
                await web.TCPSite(admin, settings.http_host, settings.metrics_port).start()
                log.info("metrics on http://%s:%d/metrics", settings.http_host, settings.metrics_port)
        if with_edge:
            from edge.app import create_app

            target = settings.target
            local = service.local_streams if service is not None and settings.edge_in_process else None
            app = create_app(
                target,
                settings.heartbeat_seconds,
                local,
                settings.edge_deadline_seconds,
                settings.sse_write_timeout,
                settings.max_json_bytes,
            )
            runner = web.AppRunner(app, handler_cancellation=True)
            await runner.setup()
            sites.append(web.TCPSite(runner, settings.http_host, settings.http_port))
            await sites[-1].start()
            log.info("HTTP edge on http://%s:%d/v1 -> gRPC %s", settings.http_host, settings.http_port, target)
    except (OSError, StoreError) as exc:  # a port in use, a store out of reach: undo what started, exit non-zero
        for app_runner in (runner, admin):
            if app_runner is not None:
                await app_runner.cleanup()
        if service is not None and service.server is not None:
            await service.stop()
        raise _CannotStart(str(exc)) from exc
    print("assistd ready", flush=True)  # tests and scripts wait for this line
    await stop.wait()
    log.info("stopping")
    for site in sites:
        await site.stop()  # no new connections; the streams in flight go on
    if service is not None:  # the runs still working get a bounded drain, then end with their events
        await service.drain(settings.drain_seconds)
    for app_runner in (runner, admin):
        if app_runner is not None:
            await app_runner.cleanup()
    if service is not None:
        await service.stop()


async def _keys(args: argparse.Namespace) -> int:
    """`assistd keys create|list|revoke`: prints a new key once (only its salted hash is kept)."""
    from service.auth import KeyStore
    from service.store import open_store

    store = open_store(args.store or Settings().store)
    await store.open()
    try:
        keys = KeyStore(store)
        if args.action == "create":
            if not args.tenant:
                print("keys create needs --tenant", file=sys.stderr)
                return 2
            try:
                record, key = await keys.create(args.tenant, args.name)
            except ValueError as exc:
                print(f"keys create: {exc}", file=sys.stderr)
                return 2
            print(f"id {record.id} tenant {record.tenant}\n{key}")
        elif args.action == "list":
            for record in await keys.all():
                if args.tenant in (None, record.tenant):
                    state = "revoked" if record.revoked_at is not None else "active"
                    print(f"{record.id}\t{record.tenant}\t{state}\t{record.created_at}\t{record.name}")
        else:
            found = await keys.get(args.key_id or "")
            if found is None or args.tenant not in (None, found.tenant):
                print(
                    f"no key {args.key_id!r}" + (f" of tenant {args.tenant!r}" if args.tenant else ""), file=sys.stderr
                )
                return 1
            await keys.revoke(found.id)
            print(f"revoked {found.id}")
        return 0
    finally:
        await store.close()


async def _credentials(args: argparse.Namespace) -> int:
    """`assistd credentials set|list|delete`: a tenant's own provider keys, stored encrypted."""
    from service.credentials import CredentialError, CredentialStore
    from service.store import open_store

    settings = Settings()
    store = open_store(args.store or settings.store)
    await store.open()
    try:
        credentials = CredentialStore(store, settings.master_key)
        if args.action == "set":
            if not args.provider or not args.api_key:
                print("credentials set needs --provider and --api-key", file=sys.stderr)
                return 2
            try:
                record = await credentials.set(args.tenant, args.provider, args.api_key, args.api_base or "")
            except CredentialError as exc:
                print(f"credentials set: {exc}", file=sys.stderr)
                return 2
            print(f"stored {record.provider} key ...{record.fingerprint} for tenant {record.tenant}")
        elif args.action == "list":
            for record in await credentials.all(args.tenant):
                print(f"{record.provider}\t{record.api_base or '-'}\t...{record.fingerprint}\t{record.created_at}")
        else:
            if not args.provider:
                print("credentials delete needs --provider", file=sys.stderr)
                return 2
            if not await credentials.delete(args.tenant, args.provider):
                print(f"no {args.provider} credentials for tenant {args.tenant!r}", file=sys.stderr)
                return 1
            print(f"deleted the {args.provider} credentials of tenant {args.tenant}")
        return 0
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="assistd", description="OpenAI Assistants API v2 server on any LLM")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("serve", "service and HTTP edge in one process (the embedded default)"),
        ("service", "the gRPC service only"),
        ("edge", "the HTTP edge only, in front of a running service"),
    ]:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--http-port", type=int, help="HTTP port (ASSISTD_HTTP_PORT, default 8080)")
        cmd.add_argument("--grpc-port", type=int, help="gRPC port (ASSISTD_GRPC_PORT, default 50051)")
        cmd.add_argument("--store", help="sqlite:///path (ASSISTD_STORE, default sqlite:///data/assistd.db)")
        cmd.add_argument("--models", help="model list YAML (ASSISTD_MODELS)")
        if name == "edge":
            cmd.add_argument("--grpc-target", help="service address host:port (ASSISTD_GRPC_TARGET)")
    keys = sub.add_parser("keys", help="create, list and revoke API keys kept in the store")
    keys.add_argument("--store", help="sqlite:///path (ASSISTD_STORE, default sqlite:///data/assistd.db)")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("key_id", nargs="?", help="the key to revoke (its id, as `list` shows it)")
    keys.add_argument("--tenant", help="whose key: required by create, filters list, checked by revoke")
    keys.add_argument("--name", default="", help="a label for a new key")
    credentials = sub.add_parser("credentials", help="a tenant's own provider keys (stored encrypted)")
    credentials.add_argument("--store", help="sqlite:///path (ASSISTD_STORE, default sqlite:///data/assistd.db)")
    credentials.add_argument("action", choices=["set", "list", "delete"])
    credentials.add_argument("--tenant", required=True, help="whose credentials")
    credentials.add_argument("--provider", help="litellm provider name: openai, anthropic, azure, ...")
    credentials.add_argument("--api-key", help="the key (set); encrypted with ASSISTD_MASTER_KEY")
    credentials.add_argument("--api-base", help="the provider's base URL, if not the model's (set)")
    args = parser.parse_args(argv)
    logs.setup()
    if args.command == "keys":
        sys.exit(asyncio.run(_keys(args)))
    if args.command == "credentials":
        sys.exit(asyncio.run(_credentials(args)))
    settings = _settings(args)
    tracing.setup(settings.tracing, "assistd-edge" if args.command == "edge" else "assistd")
    serve = _serve(
        settings, with_service=args.command in ("serve", "service"), with_edge=args.command in ("serve", "edge")
    )
    try:
        import uvloop
    except ImportError:  # uvloop is Linux/macOS only
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(serve)
    except _CannotStart as exc:
        log.error("cannot start: %s", exc)
        sys.exit(1)
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main()
