"""How a service's `eventsourcing` application is pointed at its PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import psycopg

from smartid_events.pgstore import APPLICATION_RECORDER_TOPIC, PROCESS_RECORDER_TOPIC


def event_store_env(
    database_url: str,
    *,
    schema: str = "public",
    lock_timeout_s: int = 5,
    pool_size: int = 10,
) -> dict[str, str]:
    """The env dict for `Application(env=...)`: PostgreSQL persistence for `database_url`.

    `POSTGRES_ENABLE_DB_FUNCTIONS` stays off: that insert path skips the table lock, and a
    reader following the log could then miss events (docs/adr on the relay). The application
    and process recorders are ours (`smartid_events.pgstore`, ADR 0021): the library's, with
    an insert that costs one statement and takes the same lock.
    """
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"):
        raise ValueError(f"not a PostgreSQL URL: {database_url!r}")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout_s),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "APPLICATION_RECORDER_TOPIC": APPLICATION_RECORDER_TOPIC,
        "PROCESS_RECORDER_TOPIC": PROCESS_RECORDER_TOPIC,
        "CREATE_TABLE": "y",
    }


def asyncpg_dsn(database_url: str) -> str:
    """A URL asyncpg accepts (it does not know SQLAlchemy's `+driver` suffixes)."""
    _scheme, sep, rest = database_url.partition("://")
    return f"postgresql://{rest}" if sep else database_url


def sqlalchemy_url(database_url: str) -> str:
    """The same database for SQLAlchemy's async engine on asyncpg."""
    return "postgresql+asyncpg://" + asyncpg_dsn(database_url).partition("://")[2]


# pg_advisory_lock key for start-up: "smartid" in ASCII.
STARTUP_LOCK_KEY = 0x736D61727469


@contextmanager
def serialized_startup(database_url: str) -> Iterator[None]:
    """Hold a database-wide lock while a process creates its tables.

    An API process and its worker start together and both run `CREATE TABLE IF NOT EXISTS`;
    run concurrently, PostgreSQL can fail one of them on its catalogue's unique index.
    """
    with psycopg.connect(asyncpg_dsn(database_url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (STARTUP_LOCK_KEY,))
