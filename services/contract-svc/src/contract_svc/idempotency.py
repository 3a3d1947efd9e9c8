"""`Idempotency-Key` records: a repeated request gets the first response and changes nothing."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
)
"""


class IdempotencyConflictError(Exception):
    """The key was first used for a different request (HTTP 422/409)."""

    rule = "idempotency-key-reused"


class IdempotencyInProgressError(Exception):
    """The first request with this key has not finished yet (HTTP 409, retry later)."""

    rule = "idempotency-key-in-progress"


@dataclass(frozen=True)
class Replay:
    response: dict[str, Any]


def fingerprint(method: str, path: str, body: Any) -> str:
    """A stable digest of a request: method, path and canonical JSON body."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


class IdempotencyStore(Protocol):
    def begin(self, tenant: str, key: str, fingerprint: str) -> Replay | None:
        """Claim the key. None: go ahead and run the command, then `complete` or `abandon`.

        A Replay carries the first response. Raises `IdempotencyConflictError` for a
        different request under the same key, `IdempotencyInProgressError` while the first
        one is still running.
        """
        ...

    def complete(self, tenant: str, key: str, response: dict[str, Any]) -> None: ...

    def abandon(self, tenant: str, key: str) -> None:
        """Release a claim whose command failed and recorded nothing, so a retry may run."""
        ...


def _decide(stored_fingerprint: str, response: Any, fingerprint: str) -> Replay:
    if stored_fingerprint != fingerprint:
        raise IdempotencyConflictError("this Idempotency-Key was used for a different request")
    if response is None:
        raise IdempotencyInProgressError("the first request with this key is still running")
    return Replay(dict(response))


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[str, dict[str, Any] | None, datetime]] = {}
        self._lock = threading.Lock()

    def begin(self, tenant: str, key: str, fingerprint: str) -> Replay | None:
        with self._lock:
            row = self._rows.get((tenant, key))
            if row is None:
                self._rows[(tenant, key)] = (fingerprint, None, datetime.now(UTC))
                return None
            return _decide(row[0], row[1], fingerprint)

    def complete(self, tenant: str, key: str, response: dict[str, Any]) -> None:
        with self._lock:
            stored_fingerprint, _, created_at = self._rows[(tenant, key)]
            self._rows[(tenant, key)] = (stored_fingerprint, response, created_at)

    def abandon(self, tenant: str, key: str) -> None:
        with self._lock:
            row = self._rows.get((tenant, key))
            if row is not None and row[1] is None:
                del self._rows[(tenant, key)]


class PostgresIdempotencyStore:
    """The `idempotency_keys` table in the service's database."""

    def __init__(self, conninfo: str, *, max_size: int = 4) -> None:
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=max_size, open=True)
        with self._pool.connection() as conn:
            conn.execute(CREATE_TABLE)

    def begin(self, tenant: str, key: str, fingerprint: str) -> Replay | None:
        with self._pool.connection() as conn:
            claimed = conn.execute(
                "INSERT INTO idempotency_keys (tenant, key, fingerprint) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant, key) DO NOTHING",
                (tenant, key, fingerprint),
            ).rowcount
            if claimed == 1:
                return None
            row = conn.execute(
                "SELECT fingerprint, response FROM idempotency_keys WHERE tenant = %s AND key = %s",
                (tenant, key),
            ).fetchone()
        if row is None:  # abandoned between our insert and select: claim again
            return self.begin(tenant, key, fingerprint)
        return _decide(row[0], row[1], fingerprint)

    def complete(self, tenant: str, key: str, response: dict[str, Any]) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET response = %s WHERE tenant = %s AND key = %s",
                (Jsonb(response), tenant, key),
            )

    def abandon(self, tenant: str, key: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE tenant = %s AND key = %s AND response IS NULL",
                (tenant, key),
            )

    def close(self) -> None:
        self._pool.close()
