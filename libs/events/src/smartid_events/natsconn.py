"""The one place services get a NATS connection: authenticated, reconnecting forever, logged."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

logger = logging.getLogger("smartid.nats")

RECONNECT_WAIT_S = 1.0


def inbox_prefix_for(user: str | None) -> str:
    """Each user's replies arrive under its own inbox prefix, the only one it may subscribe to."""
    return f"_INBOX_{user}" if user else "_INBOX"


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    connect_timeout: float = 5.0,
) -> Client:
    """Connect to `url` (comma-separated for a cluster) as `user`; reconnect without limit.

    The first connection must succeed (within `connect_timeout`, raising otherwise) so that a
    wrong URL or password fails at start-up, not silently later.
    """

    async def on_error(e: Exception) -> None:
        logger.error("NATS error", extra={"nats_name": name, "error": repr(e)})

    async def on_disconnected() -> None:
        logger.warning("NATS disconnected", extra={"nats_name": name})

    async def on_reconnected() -> None:
        logger.info("NATS reconnected", extra={"nats_name": name})

    async def on_closed() -> None:
        logger.info("NATS connection closed", extra={"nats_name": name})

    client: Client = await nats.connect(
        servers=[u.strip() for u in url.split(",") if u.strip()],
        name=name,
        user=user,
        password=password,
        inbox_prefix=inbox_prefix_for(user),
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_S,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        closed_cb=on_closed,
    )
    return client
