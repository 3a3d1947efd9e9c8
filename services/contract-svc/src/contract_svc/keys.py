"""Per-contract data keys, held outside the event store so that destroying one erases a contract."""

from __future__ import annotations

import os
import threading
from typing import Protocol
from uuid import UUID

from psycopg_pool import ConnectionPool

KEY_BYTES = 32  # AES-256-GCM

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS contract_keys (
    contract_id uuid PRIMARY KEY,
    key bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz
)
"""


class KeyStore(Protocol):
    def key_for(self, contract_id: UUID) -> bytes | None:
        """The contract's key, created on first use; None once it was destroyed."""
        ...

    def existing_key(self, contract_id: UUID) -> bytes | None:
        """The contract's key if it exists and was not destroyed."""
        ...

    def destroy(self, contract_id: UUID) -> None:
        """Forget the key for good; a tombstone keeps a new one from being made."""
        ...


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[UUID, bytes | None] = {}
        self._lock = threading.Lock()

    def key_for(self, contract_id: UUID) -> bytes | None:
        with self._lock:
            if contract_id not in self._keys:
                self._keys[contract_id] = os.urandom(KEY_BYTES)
            return self._keys[contract_id]

    def existing_key(self, contract_id: UUID) -> bytes | None:
        with self._lock:
            return self._keys.get(contract_id)

    def destroy(self, contract_id: UUID) -> None:
        with self._lock:
            self._keys[contract_id] = None


class PostgresKeyStore:
    """Keys in the `contract_keys` table of the service's database (not the events table)."""

    def __init__(self, conninfo: str, *, max_size: int = 4) -> None:
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=max_size, open=True)
        with self._pool.connection() as conn:
            conn.execute(CREATE_TABLE)

    def key_for(self, contract_id: UUID) -> bytes | None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO contract_keys (contract_id, key) VALUES (%s, %s) "
                "ON CONFLICT (contract_id) DO NOTHING",
                (contract_id, os.urandom(KEY_BYTES)),
            )
            row = conn.execute(
                "SELECT key FROM contract_keys WHERE contract_id = %s", (contract_id,)
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def existing_key(self, contract_id: UUID) -> bytes | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT key FROM contract_keys WHERE contract_id = %s", (contract_id,)
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def destroy(self, contract_id: UUID) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO contract_keys (contract_id, key, erased_at) VALUES (%s, NULL, now()) "
                "ON CONFLICT (contract_id) DO UPDATE SET key = NULL, erased_at = now()",
                (contract_id,),
            )

    def close(self) -> None:
        self._pool.close()
