"""`smartid schemas|stream|parked|read-model`: the event plumbing's commands.

Services plug in through entry points (or a `module:attribute` given on the command line):
`smartid.log_sources` (service → `f(database_url) -> LogSource`), `smartid.consumers`
(consumer → `async f(database_url, nats_url) -> Consumer`) and `smartid.projections`
(projection → `async f(database_url) -> Projection`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from importlib.metadata import entry_points
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smartid_events.store import asyncpg_dsn

DEFAULT_NATS = "nats://127.0.0.1:4222"


def resolve(group: str, name: str) -> Any:
    """An entry point of `group` called `name`, or `module:attribute`."""
    if ":" in name:
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise SystemExit(f"no {group} entry point named {name!r} (or give module:attribute)")


def register(subparsers: Any) -> None:
    schemas = subparsers.add_parser("schemas", help="published event schemas")
    schemas_sub = schemas.add_subparsers(dest="action", required=True)
    export = schemas_sub.add_parser("export", help="rewrite libs/events/schemas and asyncapi.json")
    export.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    export.set_defaults(func=_schemas_export)

    stream = subparsers.add_parser("stream", help="JetStream streams")
    stream_sub = stream.add_subparsers(dest="action", required=True)
    rebuild = stream_sub.add_parser("rebuild", help="republish a service's stream from its store")
    rebuild.add_argument("--service", required=True)
    rebuild.add_argument("--source", help="log source (entry point or module:attr)")
    rebuild.add_argument("--database-url", required=True)
    rebuild.add_argument("--nats-url", default=DEFAULT_NATS)
    rebuild.set_defaults(func=_stream_rebuild)

    parked = subparsers.add_parser("parked", help="parked (poison) messages")
    parked_sub = parked.add_subparsers(dest="action", required=True)
    listing = parked_sub.add_parser("list", help="list parked messages")
    listing.add_argument("--database-url", required=True)
    listing.add_argument("--consumer")
    listing.set_defaults(func=_parked_list)
    replay = parked_sub.add_parser("replay", help="apply parked messages again, in order")
    replay.add_argument("--consumer", required=True, help="entry point or module:attr")
    replay.add_argument("--contract")
    replay.add_argument("--database-url", required=True)
    replay.add_argument("--nats-url", default=DEFAULT_NATS)
    replay.set_defaults(func=_parked_replay)

    read_model = subparsers.add_parser("read-model", help="read models")
    read_model_sub = read_model.add_subparsers(dest="action", required=True)
    rm_rebuild = read_model_sub.add_parser("rebuild", help="rebuild a read model from the log")
    rm_rebuild.add_argument("--projection", required=True, help="entry point or module:attr")
    rm_rebuild.add_argument("--database-url", required=True)
    rm_rebuild.add_argument("--batch-size", type=int, default=1000)
    rm_rebuild.set_defaults(func=_read_model_rebuild)


def _schemas_export(args: argparse.Namespace) -> int:
    from smartid_events.registry import load_all
    from smartid_events.schemas_export import drift, export

    registry = load_all()
    if args.check:
        stale = drift(registry)
        for name in stale:
            print(f"out of date: {name}")
        return 1 if stale else 0
    for name in export(registry):
        print(f"wrote {name}")
    return 0


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def _stream_rebuild(args: argparse.Namespace) -> int:
    from smartid_events.log import LogSource
    from smartid_events.relay import RelaySettings, rebuild_stream

    source: LogSource = resolve("smartid.log_sources", args.source or args.service)(
        args.database_url
    )
    settings = RelaySettings(
        service=args.service,
        database_url=args.database_url,
        nats_url=args.nats_url,
        table=source.table,
        translator=source.translator,
    )
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"stream {args.service}", total=None)
        head = asyncio.run(rebuild_stream(settings, lambda p: progress.update(task, completed=p)))
    Console().print(f"republished up to position {head} in {time.perf_counter() - started:.1f}s")
    return 0


async def _list(args: argparse.Namespace) -> int:
    from smartid_events.parked import ParkedStore

    pool = await asyncpg.create_pool(asyncpg_dsn(args.database_url), min_size=1, max_size=1)
    try:
        store = ParkedStore(pool)
        await store.setup()
        messages = await store.all(args.consumer)
    finally:
        await pool.close()
    table = Table("consumer", "seq", "contract", "subject", "parked at", "reason")
    for m in messages:
        table.add_row(
            m.consumer, str(m.stream_seq), m.contract_id, m.subject, str(m.parked_at), m.reason
        )
    Console().print(table)
    return 0


def _parked_list(args: argparse.Namespace) -> int:
    return asyncio.run(_list(args))


async def _replay(args: argparse.Namespace) -> int:
    consumer = await resolve("smartid.consumers", args.consumer)(args.database_url, args.nats_url)
    result = await consumer.replay_parked(args.contract)
    Console().print(f"replayed {result.replayed}; still parked {result.still_parked}")
    return 0 if result.still_parked == 0 else 1


def _parked_replay(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))


async def _rebuild_read_model(args: argparse.Namespace) -> int:
    from smartid_events.log import rebuild_read_model

    projection = await resolve("smartid.projections", args.projection)(args.database_url)
    pool = await asyncpg.create_pool(asyncpg_dsn(args.database_url), min_size=1, max_size=2)
    started = time.perf_counter()
    try:
        with _progress() as progress:
            task = progress.add_task(f"read model {args.projection}", total=None)

            def advance(position: int, head: int) -> None:
                progress.update(task, completed=position, total=head)

            applied = await rebuild_read_model(
                projection, pool, batch_size=args.batch_size, on_progress=advance
            )
    finally:
        await pool.close()
        close = getattr(projection, "close", None)
        if close is not None:
            await close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    Console().print(f"{applied} events in {elapsed:.2f}s: {applied / elapsed:,.0f} events/s")
    return 0


def _read_model_rebuild(args: argparse.Namespace) -> int:
    return asyncio.run(_rebuild_read_model(args))
