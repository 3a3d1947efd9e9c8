"""Parked messages: poison messages and the same contract's later messages held behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

PARKED_TABLE = "parked_messages"

CREATE_PARKED = f"""
CREATE TABLE IF NOT EXISTS {PARKED_TABLE} (
    consumer text NOT NULL,
    partition int NOT NULL,
    contract_id text NOT NULL,
    stream_seq bigint NOT NULL,
    subject text NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    reason text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, stream_seq)
);
CREATE INDEX IF NOT EXISTS {PARKED_TABLE}_contract_idx
    ON {PARKED_TABLE} (consumer, contract_id, stream_seq);
"""


@dataclass(frozen=True)
class ParkedMessage:
    consumer: str
    partition: int
    contract_id: str
    stream_seq: int
    subject: str
    headers: dict[str, str]
    body: bytes
    reason: str
    parked_at: datetime | None = None


def _from_record(r: asyncpg.Record) -> ParkedMessage:
    headers = r["headers"]
    return ParkedMessage(
        consumer=r["consumer"],
        partition=r["partition"],
        contract_id=r["contract_id"],
        stream_seq=r["stream_seq"],
        subject=r["subject"],
        headers=orjson.loads(headers) if isinstance(headers, str) else dict(headers),
        body=bytes(r["body"]),
        reason=r["reason"],
        parked_at=r["parked_at"],
    )


@dataclass
class ParkedStore:
    """The `parked_messages` table in the consumer's own database."""

    pool: asyncpg.Pool[Any]

    async def setup(self) -> None:
        await self.pool.execute(CREATE_PARKED)

    async def park(self, message: ParkedMessage) -> None:
        """Park a message; parking the same stream message again changes nothing."""
        await self.pool.execute(
            f"INSERT INTO {PARKED_TABLE} (consumer, partition, contract_id, stream_seq, "
            "subject, headers, body, reason) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) "
            "ON CONFLICT (consumer, stream_seq) DO NOTHING",
            message.consumer,
            message.partition,
            message.contract_id,
            message.stream_seq,
            message.subject,
            orjson.dumps(message.headers).decode(),
            message.body,
            message.reason,
        )

    async def first_parked_seq(self, consumer: str, contract_id: str) -> int | None:
        """The oldest parked message of a contract, which later messages must wait behind."""
        value = await self.pool.fetchval(
            f"SELECT min(stream_seq) FROM {PARKED_TABLE} WHERE consumer = $1 AND contract_id = $2",
            consumer,
            contract_id,
        )
        return None if value is None else int(value)

    async def all(self, consumer: str | None = None, limit: int = 1000) -> list[ParkedMessage]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {PARKED_TABLE} WHERE $1::text IS NULL OR consumer = $1 "
            "ORDER BY consumer, stream_seq LIMIT $2",
            consumer,
            limit,
        )
        return [_from_record(r) for r in rows]

    async def count(self, consumer: str) -> int:
        value = await self.pool.fetchval(
            f"SELECT count(*) FROM {PARKED_TABLE} WHERE consumer = $1", consumer
        )
        return int(value)

    async def oldest_of_contract(self, consumer: str, contract_id: str) -> ParkedMessage | None:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {PARKED_TABLE} WHERE consumer = $1 AND contract_id = $2 "
            "ORDER BY stream_seq LIMIT 1",
            consumer,
            contract_id,
        )
        return None if row is None else _from_record(row)

    async def contracts(self, consumer: str) -> list[str]:
        rows = await self.pool.fetch(
            f"SELECT contract_id FROM {PARKED_TABLE} WHERE consumer = $1 "
            "GROUP BY contract_id ORDER BY min(stream_seq)",
            consumer,
        )
        return [r["contract_id"] for r in rows]

    async def release(self, consumer: str, stream_seq: int) -> None:
        await self.pool.execute(
            f"DELETE FROM {PARKED_TABLE} WHERE consumer = $1 AND stream_seq = $2",
            consumer,
            stream_seq,
        )

    async def set_reason(self, consumer: str, stream_seq: int, reason: str) -> None:
        await self.pool.execute(
            f"UPDATE {PARKED_TABLE} SET reason = $3 WHERE consumer = $1 AND stream_seq = $2",
            consumer,
            stream_seq,
            reason,
        )
