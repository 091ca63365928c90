"""`gatherly` command line: run the whole system, or one of its processes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from gatherly.channels import custom_channels
from gatherly.registry import APPS, PROJECTIONS, SCHEMAS, WORKERS, WRITERS
from gatherly.settings import Settings


def load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.local.supervisor import run_system

    return run_system(settings)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from gatherly.telemetry import configure_tracing

    factory_path, port_field = APPS[args.app]
    configure_tracing(f"gatherly-{args.app}")
    app = load(factory_path)(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=int(getattr(settings, port_field)),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.migrate import migrate

    unknown = set(args.schemas) - set(SCHEMAS)
    if unknown:
        print(f"unknown schema(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for schema in args.schemas or list(SCHEMAS):
        migrate(settings.database, schema, SCHEMAS[schema])
    if args.stream:
        from gatherly.bus import PartitionMismatch

        try:
            asyncio.run(prepare_stream(settings))
        except PartitionMismatch as error:
            print(f"refused: {error}", file=sys.stderr)
            return 2
    return 0


async def prepare_stream(settings: Settings) -> None:
    """Create or check the stream with its replicas and partitions before any relay publishes
    (a relay keeps what it finds, so a stream it created first would be unpartitioned)."""
    from gatherly.bus import Bus

    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="migrate")
    try:
        await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds,
                                replicas=settings.stream_replicas,
                                partitions=settings.stream_partitions)
    finally:
        await bus.close()


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.outbox import run_relay
    from gatherly.telemetry import configure_tracing

    configure_tracing(f"gatherly-{args.schema}-relay")
    asyncio.run(run_relay(settings, args.schema))
    return 0


def cmd_republish(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.outbox import republish

    count = asyncio.run(republish(settings, args.schema, args.since))
    print(f"republished {count} events of {args.schema} recorded since {args.since.isoformat()}")
    return 0


def aware_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time with an offset, e.g. 2026-11-20T00:00Z")
    return moment


def cmd_project(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.bus import PartitionMismatch
    from gatherly.projector import run_projection
    from gatherly.telemetry import configure_tracing

    configure_tracing(f"gatherly-{args.projection}-projector")
    projection = load(PROJECTIONS[args.projection])()
    try:
        asyncio.run(run_projection(settings, projection))
    except PartitionMismatch as error:
        print(f"refused: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_work(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.telemetry import configure_tracing

    configure_tracing(f"gatherly-{args.worker}")
    asyncio.run(run_until_signalled(load(WORKERS[args.worker])(settings)))
    return 0


async def run_until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or SIGTERM/SIGINT arrives, then cancel it."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def cmd_nats_metrics(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.nats_metrics import main

    monitor = args.monitor_url or f"http://127.0.0.1:{settings.nats_monitor_port}"
    main(["--monitor-url", monitor, "--host", settings.host,
          "--port", str(settings.nats_metrics_port)])
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from gatherly.replay import replay

    projection = load(PROJECTIONS[args.projection])()
    return asyncio.run(replay(settings, projection))


def cmd_import_members(settings: Settings, args: argparse.Namespace) -> int:
    # By string, like `serve`: the kernel never imports a service.
    return int(load("services.members.cli_import:import_members")(
        settings, args.community, args.file, args.report, custom_channels(args.channels)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatherly", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole system (embedded NATS/Postgres unless set)")
    serve = commands.add_parser("serve", help="run one HTTP app")
    serve.add_argument("app", choices=sorted(APPS))
    migrate = commands.add_parser("migrate", help="apply database migrations")
    # No `choices=` here: on Python 3.11 it rejects an empty list (bpo-9625).
    migrate.add_argument("schemas", nargs="*", help=f"any of {', '.join(sorted(SCHEMAS))}")
    migrate.add_argument("--stream", action="store_true",
                         help="also create or check the NATS stream (replicas, partitions)")
    relay = commands.add_parser("relay", help="publish a service's committed events to NATS")
    relay.add_argument("schema", choices=WRITERS)
    again = commands.add_parser(
        "republish", help="publish a service's events again from its store (stream recovery)"
    )
    again.add_argument("schema", choices=WRITERS)
    again.add_argument("--since", type=aware_time, required=True, help="ISO 8601 with offset")
    project = commands.add_parser("project", help="run a projection consumer")
    project.add_argument("projection", choices=sorted(PROJECTIONS))
    work = commands.add_parser("work", help="run one of the other long-running workers")
    work.add_argument("worker", choices=sorted(WORKERS))
    replay = commands.add_parser("replay", help="drop a projection and rebuild it from the log")
    replay.add_argument("projection", choices=sorted(PROJECTIONS))
    exporter = commands.add_parser(
        "nats-metrics", help="serve a NATS server's monitoring data as Prometheus metrics"
    )
    exporter.add_argument("--monitor-url", help="default: the embedded server's monitoring port")
    members_import = commands.add_parser(
        "import-members", help="import members from a CSV or NDJSON file, with progress"
    )
    members_import.add_argument("community")
    members_import.add_argument("file", help="a .csv, .ndjson or .jsonl file")
    members_import.add_argument(
        "--report", metavar="PATH", help="write the per-row report (NDJSON) to this file"
    )
    # The community's custom channels live with the gateway's edge app, whose tables no service
    # reads; the CLI runs without the gateway, so the operator names them (as the edge app shows
    # them: GET /v1/communities/{id}).
    members_import.add_argument(
        "--channels", metavar="SLUGS", help="the community's custom channels, comma-separated"
        " ('' for none): rows naming another channel are rejected; left out, any custom slug"
        " is taken"
    )
    return parser


HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "up": cmd_up,
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "relay": cmd_relay,
    "project": cmd_project,
    "republish": cmd_republish,
    "replay": cmd_replay,
    "work": cmd_work,
    "import-members": cmd_import_members,
    "nats-metrics": cmd_nats_metrics,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return HANDLERS[args.command](Settings(), args)


if __name__ == "__main__":
    sys.exit(main())
