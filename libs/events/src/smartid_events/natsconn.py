"""The one place services get a NATS connection: authenticated, reconnecting forever, logged."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client
from nats.errors import AuthorizationError, NoServersError

logger = logging.getLogger("smartid.nats")

RECONNECT_WAIT_S = 1.0
FOREVER = -1


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
    initial_attempts: int = 3,
) -> Client:
    """Connect to `url` (comma-separated for a cluster) as `user`; reconnect without limit.

    The first connection must succeed within `initial_attempts` tries per server, raising
    `ConnectionError` otherwise, so that a wrong URL or password fails at start-up instead of
    retrying silently; once connected, the client reconnects forever.
    """
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)
        logger.error("NATS error", extra={"nats_name": name, "error": repr(e)})

    async def on_disconnected() -> None:
        logger.warning("NATS disconnected", extra={"nats_name": name})

    async def on_reconnected() -> None:
        logger.info("NATS reconnected", extra={"nats_name": name})

    async def on_closed() -> None:
        logger.info("NATS connection closed", extra={"nats_name": name})

    try:
        client: Client = await nats.connect(
            servers=[u.strip() for u in url.split(",") if u.strip()],
            name=name,
            user=user,
            password=password,
            inbox_prefix=inbox_prefix_for(user),
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=initial_attempts,
            reconnect_time_wait=RECONNECT_WAIT_S,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
        )
    except NoServersError as e:
        # A refused password is the telling error: a later attempt may only see the server
        # hang up on it (a connection reset), which would hide why.
        refused = [x for x in errors if isinstance(x, AuthorizationError)]
        cause = refused[0] if refused else errors[-1] if errors else e
        raise ConnectionError(f"cannot connect to NATS at {url} as {user}: {cause}") from cause
    # nats-py reads this option on every reconnect: from now on, never give up.
    client.options["max_reconnect_attempts"] = FOREVER
    return client
