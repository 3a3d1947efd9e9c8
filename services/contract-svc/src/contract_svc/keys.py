"""Per-contract data keys, held outside the event store so that destroying one erases a contract."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

KEY_BYTES = 32  # AES-256-GCM
RESERVE = 32  # ids of future contracts whose keys are made along with one asked for
CACHE_SIZE = 100_000  # ~15 MB of keys
ERASURE_CHECK_S = 1.0  # how long another process's erasure may go unnoticed (ADR 0015)
# Erasures are looked for from this long before the last check, so that one whose transaction
# took its timestamp before that check but committed after it is still seen.
ERASURE_OVERLAP = timedelta(seconds=60)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS contract_keys (
    contract_id uuid PRIMARY KEY,
    key bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz
);
CREATE INDEX IF NOT EXISTS contract_keys_erased_at ON contract_keys (erased_at)
    WHERE erased_at IS NOT NULL
"""


class KeyStore(Protocol):
    def reserved_id(self) -> UUID | None:
        """A new contract's id whose key is already stored, if one is at hand (no I/O)."""
        ...

    def create(self, contract_id: UUID) -> bytes | None:
        """Make the contract's key now, before its first event is sealed; None if destroyed.

        Idempotent: concurrent or repeated calls all get the one key that was stored.
        """
        ...

    def key_for(self, contract_id: UUID) -> bytes | None:
        """The contract's key, created on first use; None once it was destroyed."""
        ...

    def existing_key(self, contract_id: UUID) -> bytes | None:
        """The contract's key if it exists and was not destroyed."""
        ...

    def prefetch(self, contract_ids: Collection[UUID]) -> None:
        """Load these contracts' keys in one go, so that the lookups that follow are cheap."""
        ...

    def destroy(self, contract_id: UUID) -> None:
        """Forget the key for good; a tombstone keeps a new one from being made."""
        ...


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[UUID, bytes | None] = {}
        self._lock = threading.Lock()

    def reserved_id(self) -> UUID | None:
        contract_id = uuid4()
        self.key_for(contract_id)
        return contract_id

    def create(self, contract_id: UUID) -> bytes | None:
        return self.key_for(contract_id)

    def key_for(self, contract_id: UUID) -> bytes | None:
        with self._lock:
            if contract_id not in self._keys:
                self._keys[contract_id] = os.urandom(KEY_BYTES)
            return self._keys[contract_id]

    def existing_key(self, contract_id: UUID) -> bytes | None:
        with self._lock:
            return self._keys.get(contract_id)

    def prefetch(self, contract_ids: Collection[UUID]) -> None:
        pass

    def destroy(self, contract_id: UUID) -> None:
        with self._lock:
            self._keys[contract_id] = None


class PostgresKeyStore:
    """Keys in the `contract_keys` table of the service's database (not the events table).

    Keys and tombstones are cached in this process. `destroy` puts a tombstone in the cache at
    once; destructions by other processes are picked up by asking, at most every
    `erasure_check_s`, which keys were destroyed lately (ADR 0015): a cached key is never
    served longer than that after another process destroyed it.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int = 8,
        cache_size: int = CACHE_SIZE,
        erasure_check_s: float = ERASURE_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=max_size, open=True)
        self._cache: dict[UUID, bytes | None] = {}
        self._cache_size = cache_size
        self._erasure_check_s = erasure_check_s
        self._clock = clock
        self._lock = threading.Lock()
        self.queries = 0  # round trips to the database, for tests and benchmarks
        self._reserved: deque[UUID] = deque()
        self._checked_at = self._clock()
        with self._pool.connection() as conn:
            conn.execute(CREATE_TABLE)
            started: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        self._erased_since = started

    def reserved_id(self) -> UUID | None:
        try:
            return self._reserved.popleft()
        except IndexError:
            return None

    def create(self, contract_id: UUID) -> bytes | None:
        """Also makes keys for `RESERVE` future contracts, handed out by `reserved_id`.

        Applications then find their key made and cached: one commit per `RESERVE` of them.
        """
        self._check_erasures()
        if contract_id in self._cache:
            return self._cache[contract_id]
        reserve = [uuid4() for _ in range(RESERVE)]
        with self._pool.connection() as conn:
            for attempt in range(3):
                self.queries += 1
                ids = [contract_id, *reserve] if attempt == 0 else [contract_id]
                # The rows this call inserted, and the contract's row if it was already there.
                # A row a concurrent call committed while this statement waited on it is not
                # in the statement's snapshot: the next attempt sees it.
                rows = conn.execute(
                    "WITH new AS (INSERT INTO contract_keys (contract_id, key)"
                    " SELECT * FROM unnest(%s::uuid[], %s::bytea[])"
                    " ON CONFLICT (contract_id) DO NOTHING RETURNING contract_id, key)"
                    " SELECT contract_id, key FROM new UNION ALL"
                    " SELECT contract_id, key FROM contract_keys WHERE contract_id = %s",
                    (ids, [os.urandom(KEY_BYTES) for _ in ids], contract_id),
                ).fetchall()
                conn.commit()
                keys = {i: None if k is None else bytes(k) for i, k in rows}
                if attempt == 0:
                    for reserved in reserve:
                        self._remember(reserved, keys[reserved])
                    self._reserved.extend(reserve)
                if contract_id in keys:
                    return self._remember(contract_id, keys[contract_id])
        raise RuntimeError(f"no key could be read back for contract {contract_id}")

    def key_for(self, contract_id: UUID) -> bytes | None:
        return self.create(contract_id)

    def existing_key(self, contract_id: UUID) -> bytes | None:
        self._check_erasures()
        if contract_id in self._cache:
            return self._cache[contract_id]
        self._fetch([contract_id])
        return self._cache.get(contract_id)

    def prefetch(self, contract_ids: Collection[UUID]) -> None:
        self._check_erasures()
        missing = [i for i in contract_ids if i not in self._cache]
        if missing:
            self._fetch(missing)

    def destroy(self, contract_id: UUID) -> None:
        with self._pool.connection() as conn:
            self.queries += 1
            conn.execute(
                "INSERT INTO contract_keys (contract_id, key, erased_at) VALUES (%s, NULL, now()) "
                "ON CONFLICT (contract_id) DO UPDATE SET key = NULL, erased_at = now()",
                (contract_id,),
            )
        with self._lock:
            self._cache[contract_id] = None

    def close(self) -> None:
        self._pool.close()

    def _fetch(self, contract_ids: list[UUID]) -> None:
        with self._pool.connection() as conn:
            self.queries += 1
            rows = conn.execute(
                "SELECT contract_id, key FROM contract_keys WHERE contract_id = ANY(%s)",
                (contract_ids,),
            ).fetchall()
        # No row (yet): nothing is cached, so a key made later by another process is found.
        for contract_id, key in rows:
            self._remember(contract_id, None if key is None else bytes(key))

    def _remember(self, contract_id: UUID, key: bytes | None) -> bytes | None:
        with self._lock:
            if self._cache.get(contract_id, b"") is None:
                return None  # a tombstone wins over a key read before the destruction
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
            self._cache[contract_id] = key
        return key

    def _check_erasures(self) -> None:
        """Tombstone the keys other processes destroyed since the last check, if it is due."""
        now = self._clock()
        if now - self._checked_at < self._erasure_check_s:
            return
        with self._pool.connection() as conn:
            self.queries += 1
            row = conn.execute(
                "SELECT now(), array(SELECT contract_id FROM contract_keys WHERE erased_at > %s)",
                (self._erased_since - ERASURE_OVERLAP,),
            ).fetchone()
        assert row is not None
        checked, erased = row
        with self._lock:
            for contract_id in erased:
                self._cache[contract_id] = None
            self._erased_since = checked
            self._checked_at = now
