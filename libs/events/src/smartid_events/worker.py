"""Running a service's worker process: logs, signals, and a Prometheus endpoint of its own."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from prometheus_client import start_http_server

from smartid_events.logs import configure_logging
from smartid_events.settings import ServiceSettings
from smartid_events.supervise import supervise

logger = logging.getLogger(__name__)

WorkerBody = Callable[[asyncio.Event], Awaitable[None]]


def serve_worker_metrics(settings: ServiceSettings) -> int | None:
    """Expose this process's metrics (relay lag, consumer lag, parked messages) over HTTP.

    They live in the worker, not in the API process that serves `/metrics`.
    """
    port = settings.worker_metrics_port_value()
    if port <= 0:
        return None
    try:
        start_http_server(port, addr=settings.http_host)
    except OSError as e:
        logger.warning("worker metrics not served", extra={"port": port, "error": str(e)})
        return None
    logger.info("worker metrics served", extra={"url": f"http://{settings.http_host}:{port}/"})
    return port


def run_worker(settings: ServiceSettings, body: WorkerBody) -> None:
    """Run `body(stop)` until SIGTERM or SIGINT sets `stop`."""
    configure_logging(settings.service_name, settings.log_level)
    serve_worker_metrics(settings)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("worker started", extra={"worker": settings.service_name})
        # Start-up itself may meet a database that is restarting: retry it like any loop.
        await supervise(f"{settings.service_name} worker", body, stop)
        logger.info("worker stopped", extra={"worker": settings.service_name})

    asyncio.run(serve())
